"""`install()`: complete moto's AWS IoT in this process, once. moto builds each account's backend from the class its
`BackendDict` holds, so the embedded backend (`models.EmbeddedBackend`) is put there; the HTTP handlers
(`responses`) are given to moto's `IoTResponse`, which moto routes requests to. The embedded Lambda (`functions`) is
installed with it, so a rehearsal's hook functions run wherever its IoT does."""

from __future__ import annotations

import threading

from moto.iot.models import iot_backends
from moto.iot.responses import IoTResponse

from . import functions
from .models import EmbeddedBackend, patch_certificate_descriptions
from .responses import HANDLERS, admit_every_operation

_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Complete moto's IoT in this process (safe to call more than once)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        iot_backends.backend = EmbeddedBackend
        for account in iot_backends.values():  # backends made before: made again, of the embedded class, on use
            account.backend = EmbeddedBackend
            account.clear()
        patch_certificate_descriptions()
        for name, handler in HANDLERS.items():
            setattr(IoTResponse, name, handler)
        admit_every_operation()
        functions.install()
        _installed = True
