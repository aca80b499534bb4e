"""Issuer + serial number -> AWS IoT certificate id, kept in the decision table beside Powertools' records, so the
revocation sync finds the certificates a CRL lists without a DescribeCertificate per registered device.

Items (partition key `id`):
- `jitr-serial#<caId>#<serial hex>`: `certificateId`, `decidedAt`, `notAfter`, `expiration` (the table's TTL: the
  certificate's notAfter plus a day, after which no CRL needs to name it); once the sync acted on it: `syncedStatus`
  (REVOKED, or INACTIVE for a hold), `syncedAt`, `syncedReason`, `syncedSource`, `syncedRevokedAt`.
- `jitr-revocation-sync#<caId>`: what the last sync of the CA's CRL found and did (`jitr doctor` reads it).
- `jitr-revocation-backfill#<caId>`: where `jitr revocation backfill` stopped.

Raising `IndexUnavailable` means the table could not be read or written: never the device's fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

SERIAL_PREFIX = "jitr-serial#"
SYNC_PREFIX = "jitr-revocation-sync#"
BACKFILL_PREFIX = "jitr-revocation-backfill#"
KEY_ATTRIBUTE = "id"
EXPIRY_ATTRIBUTE = "expiration"
KEPT_PAST_NOT_AFTER = timedelta(days=1)
BATCH_GET_KEYS = 100  # BatchGetItem's limit


class IndexUnavailable(Exception):
    """The decision table could not be read or written."""


def serial_key(ca_id: str, serial_hex: str) -> str:
    return f"{SERIAL_PREFIX}{ca_id}#{serial_hex.lower()}"


def _text(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain values (strings, numbers as int, string sets as sorted lists)."""
    plain: dict[str, Any] = {}
    for name, value in item.items():
        if "S" in value:
            plain[name] = value["S"]
        elif "N" in value:
            plain[name] = int(value["N"])
        elif "SS" in value:
            plain[name] = sorted(value["SS"])
        elif "BOOL" in value:
            plain[name] = value["BOOL"]
    return plain


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RevocationIndex:
    """The index and the sync's state in the decision table `table_name`."""

    def __init__(self, table_name: str, dynamodb_client: Any) -> None:
        self.table = table_name
        self.client = dynamodb_client

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self.client, operation)(TableName=self.table, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise IndexUnavailable(f"{operation} on {self.table}: {exc}") from exc
        return response

    def record(self, ca_id: str, serial_hex: str, certificate_id: str, not_after: datetime) -> None:
        """Remember which certificate id the CA's serial number is (what the sync has done to it is kept)."""
        expires = int((not_after + KEPT_PAST_NOT_AFTER).timestamp())
        self._call(
            "update_item",
            Key={KEY_ATTRIBUTE: {"S": serial_key(ca_id, serial_hex)}},
            UpdateExpression="SET certificateId = :c, decidedAt = :d, notAfter = :n, #e = :e",
            ExpressionAttributeNames={"#e": EXPIRY_ATTRIBUTE},
            ExpressionAttributeValues={
                ":c": {"S": certificate_id},
                ":d": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
                ":n": {"S": not_after.isoformat(timespec="seconds")},
                ":e": {"N": str(expires)},
            },
        )

    def item(self, ca_id: str, serial_hex: str) -> dict[str, Any] | None:
        response = self._call(
            "get_item", Key={KEY_ATTRIBUTE: {"S": serial_key(ca_id, serial_hex)}}, ConsistentRead=True
        )
        return _text(response["Item"]) if "Item" in response else None

    def lookup(self, ca_id: str, serials: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The index items of those of `serials` (hex) that are registered certificates, by serial."""
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(sorted({s.lower() for s in serials}), BATCH_GET_KEYS):
            keys: list[dict[str, Any]] = [{KEY_ATTRIBUTE: {"S": serial_key(ca_id, s)}} for s in chunk]
            while keys:
                response = self._batch_get(keys)
                for item in response.get("Responses", {}).get(self.table, []):
                    plain = _text(item)
                    found[plain[KEY_ATTRIBUTE].rsplit("#", 1)[-1]] = plain
                keys = response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
        return found

    def _batch_get(self, keys: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            response: dict[str, Any] = self.client.batch_get_item(RequestItems={self.table: {"Keys": keys}})
        except (ClientError, BotoCoreError) as exc:
            raise IndexUnavailable(f"BatchGetItem on {self.table}: {exc}") from exc
        return response

    def mark_synced(
        self,
        ca_id: str,
        serial_hex: str,
        status: str | None,
        *,
        reason: str = "",
        source: str = "",
        revoked_at: str = "",
    ) -> None:
        """Record what the sync did to a certificate (status None: released from a hold, ACTIVE again)."""
        key = {KEY_ATTRIBUTE: {"S": serial_key(ca_id, serial_hex)}}
        now = {":t": {"S": datetime.now(UTC).isoformat(timespec="seconds")}}
        if status is None:
            self._call(
                "update_item",
                Key=key,
                UpdateExpression="SET releasedAt = :t REMOVE syncedStatus",
                ExpressionAttributeValues=now,
            )
            return
        self._call(
            "update_item",
            Key=key,
            UpdateExpression="SET syncedStatus = :s, syncedAt = :t, syncedReason = :r, syncedSource = :u,"
            " syncedRevokedAt = :a",
            ExpressionAttributeValues={
                **now,
                ":s": {"S": status},
                ":r": {"S": reason},
                ":u": {"S": source},
                ":a": {"S": revoked_at},
            },
        )

    def sync_state(self, ca_id: str) -> dict[str, Any] | None:
        response = self._call("get_item", Key={KEY_ATTRIBUTE: {"S": SYNC_PREFIX + ca_id}}, ConsistentRead=True)
        return _text(response["Item"]) if "Item" in response else None

    def put_sync_state(self, ca_id: str, state: dict[str, Any]) -> None:
        item: dict[str, Any] = {KEY_ATTRIBUTE: {"S": SYNC_PREFIX + ca_id}}
        for name, value in state.items():
            if value is None:
                continue
            if isinstance(value, bool):
                item[name] = {"BOOL": value}
            elif isinstance(value, int):
                item[name] = {"N": str(value)}
            elif isinstance(value, (set, frozenset, list, tuple)):
                if value:  # DynamoDB refuses an empty string set
                    item[name] = {"SS": sorted(value)}
            else:
                item[name] = {"S": str(value)}
        self._call("put_item", Item=item)

    def backfill_marker(self, ca_id: str) -> tuple[str | None, int]:
        response = self._call("get_item", Key={KEY_ATTRIBUTE: {"S": BACKFILL_PREFIX + ca_id}}, ConsistentRead=True)
        item = _text(response.get("Item", {}))
        return item.get("marker"), int(item.get("indexed", 0))

    def put_backfill_marker(self, ca_id: str, marker: str | None, indexed: int) -> None:
        item: dict[str, Any] = {
            KEY_ATTRIBUTE: {"S": BACKFILL_PREFIX + ca_id},
            "indexed": {"N": str(indexed)},
            "updatedAt": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
        }
        if marker:
            item["marker"] = {"S": marker}
        self._call("put_item", Item=item)
