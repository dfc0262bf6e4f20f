"""Client for the IRT ``predict`` Cloud Function (``docs/predict-openapi.yaml``).

::

    from irt_predict_client import PredictClient

    client = PredictClient("https://predict-abc-ew.a.run.app")
    result = client.predict([{"item_id": 1042, "correct": True}], items=[1043])
    result["probabilities"]["1043"]
"""

from irt_predict_client.client import (
    Ability,
    Answer,
    Exposure,
    ExposureAdvice,
    NextItem,
    NextItemsResult,
    PredictClient,
    PredictResult,
    StopAdvice,
    StopRule,
)
from irt_predict_client.errors import (
    AuthenticationError,
    ConnectionFailedError,
    InvalidRequestError,
    MalformedResponseError,
    PermissionDeniedError,
    PredictError,
    ServerError,
    UnavailableError,
)

__all__ = ["Ability", "Answer", "AuthenticationError", "ConnectionFailedError", "Exposure",
           "ExposureAdvice", "InvalidRequestError", "MalformedResponseError", "NextItem",
           "NextItemsResult", "PermissionDeniedError", "PredictClient", "PredictError",
           "PredictResult", "ServerError", "StopAdvice", "StopRule", "UnavailableError"]
__version__ = "0.1.0"
