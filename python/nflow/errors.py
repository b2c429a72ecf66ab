"""The C library's status codes as exceptions: every failing call raises one,
carrying the library's message; nothing is silently turned into NaN."""


class Error(Exception):
    """Base class of nflow's errors; `status` is the C status code."""

    status = 0


class ArgumentError(Error, ValueError):
    """An invalid argument: a bad count, option or spec (NF_ERR_ARG)."""

    status = 1


class ShapeError(Error, ValueError):
    """Dimensions of two objects or arrays disagree (NF_ERR_SHAPE)."""

    status = 2


class DomainError(Error, ValueError):
    """An input is non-finite or outside a map's domain (NF_ERR_DOMAIN)."""

    status = 3


class NumericalError(Error, ArithmeticError):
    """A result overflowed or became non-finite (NF_ERR_NUMERIC)."""

    status = 4


class UnsupportedError(Error, NotImplementedError):
    """The operation is not defined for this object (NF_ERR_UNSUPPORTED)."""

    status = 6


class IOError(Error, OSError):  # noqa: A001 - the issue's name, shadowing the builtin alias inside this module only
    """A file could not be opened, read or written (NF_ERR_IO)."""

    status = 7


_BY_STATUS = {c.status: c for c in (ArgumentError, ShapeError, DomainError, NumericalError, UnsupportedError, IOError)}


def from_status(status, message):
    """The exception for a C status code (MemoryError for NF_ERR_NOMEM)."""
    if status == 5:
        return MemoryError(message)
    return _BY_STATUS.get(status, Error)(message)
