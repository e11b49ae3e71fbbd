"""Recursive-descent parser for the Batch autoscale formula language.

Grammar (lowest precedence first)::

    formula     := statement (';' statement)* ';'?
    statement   := NAME '=' expr | expr
    expr        := or ('?' expr ':' expr)?
    or          := and ('||' and)*
    and         := compare ('&&' compare)*
    compare     := additive (('<' | '<=' | '==' | '>=' | '>' | '!=') additive)*
    additive    := term (('+' | '-') term)*
    term        := unary (('*' | '/') unary)*
    unary       := ('-' | '!') unary | postfix
    postfix     := primary ('.' NAME ('(' args ')')?)*
    primary     := NUMBER | STRING | NAME | NAME '(' args ')' | '(' expr ')'

The service's limits are checked here: 8192 characters and 100 statements. A missing ``;`` is tolerated only where
a new assignment starts on a new line (an example in the Azure docs relies on it); anything else is a syntax
error naming the line and column of the offending token.
"""

from __future__ import annotations

from . import syntax_tree as t
from .errors import TOO_LONG, FormulaError, syntax_error
from .lexer import EOF, NAME, NUMBER, OP, STRING, Token, tokenize

MAX_FORMULA_LENGTH = 8192
MAX_STATEMENTS = 100

_COMPARISONS = ("<", "<=", "==", ">=", ">", "!=")


def parse(source: str) -> t.Formula:
    """Parse ``source`` into a Formula, or raise FormulaError (syntax error or too long)."""
    if len(source) > MAX_FORMULA_LENGTH:
        raise FormulaError(TOO_LONG, f"The autoscale formula is {len(source)} characters long; "
                                     f"the maximum length is {MAX_FORMULA_LENGTH} characters")
    return _Parser(tokenize(source), source).formula()


def _describe(tok: Token) -> str:
    if tok.kind == EOF:
        return "end of formula"
    return f"'{tok.text}'"


class _Parser:
    def __init__(self, tokens: list[Token], source: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.source = source

    # -- token helpers -------------------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def at(self, *ops: str) -> bool:
        return self.tok.kind == OP and self.tok.text in ops

    def advance(self) -> Token:
        tok = self.tok
        self.pos += 1
        return tok

    def expect(self, op: str, what: str) -> Token:
        if not self.at(op):
            raise syntax_error(f"Expected '{op}' {what}, found {_describe(self.tok)}", self.tok.line, self.tok.col)
        return self.advance()

    # -- statements ----------------------------------------------------------------------------------------
    def formula(self) -> t.Formula:
        statements: list[t.Node] = []
        while self.tok.kind != EOF:
            if self.at(";"):
                self.advance()
                continue
            if len(statements) == MAX_STATEMENTS:
                raise syntax_error(f"The formula has more than {MAX_STATEMENTS} statements; "
                                   f"at most {MAX_STATEMENTS} are allowed", self.tok.line, self.tok.col)
            statements.append(self.statement())
            if self.at(";"):
                self.advance()
            elif self.tok.kind != EOF and not self._starts_assignment_on_new_line():
                raise syntax_error(f"Expected ';' after the statement, found {_describe(self.tok)}",
                                   self.tok.line, self.tok.col)
        if not statements:
            raise syntax_error("The formula contains no statements", 1, 1)
        return t.Formula(tuple(statements), self.source)

    def _starts_assignment_on_new_line(self) -> bool:
        nxt = self.peek()
        return (self.tok.kind == NAME and self.tok.newline_before
                and nxt.kind == OP and nxt.text == "=")

    def statement(self) -> t.Node:
        tok = self.tok
        nxt = self.peek()
        if tok.kind == NAME and nxt.kind == OP and nxt.text == "=":
            self.pos += 2
            if self.tok.kind == EOF or self.at(";"):
                raise syntax_error(f"Expected an expression after '{tok.text} =', found {_describe(self.tok)}",
                                   self.tok.line, self.tok.col)
            return t.Assign(tok.line, tok.col, tok.text, self.expression())
        expr = self.expression()
        return t.ExprStatement(tok.line, tok.col, expr)

    # -- expressions ---------------------------------------------------------------------------------------
    def expression(self) -> t.Node:
        cond = self.logical_or()
        if self.at("?"):
            q = self.advance()
            if_true = self.expression()
            self.expect(":", "in the conditional expression")
            if_false = self.expression()
            return t.Conditional(q.line, q.col, cond, if_true, if_false)
        return cond

    def _left_assoc(self, ops: tuple[str, ...], operand) -> t.Node:
        left = operand()
        while self.at(*ops):
            op = self.advance()
            right = operand()
            left = t.Binary(op.line, op.col, op.text, left, right)
        return left

    def logical_or(self) -> t.Node:
        return self._left_assoc(("||",), self.logical_and)

    def logical_and(self) -> t.Node:
        return self._left_assoc(("&&",), self.comparison)

    def comparison(self) -> t.Node:
        return self._left_assoc(_COMPARISONS, self.additive)

    def additive(self) -> t.Node:
        return self._left_assoc(("+", "-"), self.term)

    def term(self) -> t.Node:
        return self._left_assoc(("*", "/"), self.unary)

    def unary(self) -> t.Node:
        if self.at("-", "!"):
            op = self.advance()
            return t.Unary(op.line, op.col, op.text, self.unary())
        return self.postfix()

    def postfix(self) -> t.Node:
        node = self.primary()
        while self.at("."):
            self.advance()
            name = self.tok
            if name.kind != NAME or name.text.startswith("$"):
                raise syntax_error(f"Expected a member or method name after '.', found {_describe(name)}",
                                   name.line, name.col)
            self.advance()
            if self.at("("):
                paren = self.tok
                args = self.arguments()
                node = t.MethodCall(paren.line, paren.col, node, name.text, args)
            else:
                node = t.Member(name.line, name.col, node, name.text)
        return node

    def arguments(self) -> tuple[t.Node, ...]:
        self.expect("(", "to start the argument list")
        args: list[t.Node] = []
        if not self.at(")"):
            args.append(self.expression())
            while self.at(","):
                self.advance()
                args.append(self.expression())
        self.expect(")", "to close the argument list")
        return tuple(args)

    def primary(self) -> t.Node:
        tok = self.tok
        if tok.kind == NUMBER:
            self.advance()
            return t.Number(tok.line, tok.col, tok.value)
        if tok.kind == STRING:
            self.advance()
            return t.String(tok.line, tok.col, tok.value)
        if tok.kind == NAME:
            self.advance()
            if self.at("("):
                if tok.text.startswith("$"):
                    raise syntax_error(f"'{tok.text}' is a variable, not a function", tok.line, tok.col)
                return t.Call(tok.line, tok.col, tok.text, self.arguments())
            return t.Name(tok.line, tok.col, tok.text)
        if self.at("("):
            self.advance()
            expr = self.expression()
            self.expect(")", "to close the parenthesis")
            return expr
        raise syntax_error(f"Expected an expression, found {_describe(tok)}", tok.line, tok.col)
