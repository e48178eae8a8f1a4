"""Kubernetes resource quantities as Decimals (1Gi == 1024Mi), to compare what we apply with
what the API server canonicalized. Pure; the grammar of apimachinery's resource.Quantity."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -3, "u": -2, "m": -1, "": 0, "k": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}


def parse_quantity(quantity: object) -> Decimal:
    """The quantity's value; ValueError for anything that is not a quantity."""
    if isinstance(quantity, bool):
        raise ValueError(f"not a quantity: {quantity!r}")
    if isinstance(quantity, int | float | Decimal):
        return Decimal(quantity)
    text = str(quantity)
    if text[-2:] in _BINARY:
        number, factor = text[:-2], Decimal(1024) ** _BINARY[text[-2:]]
    elif text[-1:] in _DECIMAL and text[-1:] != "":
        number, factor = text[:-1], Decimal(1000) ** _DECIMAL[text[-1:]]
    else:
        number, factor = text, Decimal(1)
    try:
        return Decimal(number) * factor
    except InvalidOperation as exc:
        raise ValueError(f"not a quantity: {quantity!r}") from exc
