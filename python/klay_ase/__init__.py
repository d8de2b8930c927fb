"""ASE calculator for KLay models, evaluated by the klay runtime (libklay.so) through its C API."""
from ._capi import KLayError
from .calculator import KLayCalculator

__all__ = ["KLayCalculator", "KLayError"]
