"""Lightning callbacks: the VAT evaluation callback."""

from vat.callbacks.vat import VATCallback, curve_row

__all__ = ["VATCallback", "curve_row"]
