"""AWS IoT errors moto does not define, raised by the embedded IoT exactly as the service names them."""

from __future__ import annotations

from moto.iot.exceptions import IoTClientError


class _Error(IoTClientError):
    status = 400
    error_type = ""

    def __init__(self, message: str) -> None:
        self.code = self.status
        super().__init__(self.error_type, message)


class ThrottlingException(_Error):
    status = 400
    error_type = "ThrottlingException"


class ConflictingResourceUpdateException(_Error):
    status = 409
    error_type = "ConflictingResourceUpdateException"


class ResourceRegistrationFailureException(_Error):
    status = 400
    error_type = "ResourceRegistrationFailureException"


class CertificateValidationException(_Error):
    status = 400
    error_type = "CertificateValidationException"


class CertificateStateException(_Error):
    status = 406
    error_type = "CertificateStateException"


class InvalidRequestException(_Error):
    status = 400
    error_type = "InvalidRequestException"


class MalformedPolicyException(_Error):
    status = 400
    error_type = "MalformedPolicyException"


class ResourceNotFoundException(_Error):
    status = 404
    error_type = "ResourceNotFoundException"


class ResourceAlreadyExistsException(_Error):
    status = 409
    error_type = "ResourceAlreadyExistsException"


class ServiceUnavailableException(_Error):
    status = 503
    error_type = "ServiceUnavailableException"


class UnauthorizedException(_Error):
    status = 401
    error_type = "UnauthorizedException"
