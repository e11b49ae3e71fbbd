"""The local stack itself: lifecycle, real services, image checks, staying on this machine."""
