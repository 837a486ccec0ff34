"""chalicelib/local/moto_fidelity.py changes how moto runs transactions; these check that a transaction still
commits all or nothing, exactly as moto's own implementation does."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.local.moto_fidelity import atomic_transactions

TABLE = "fidelity"


def scan(client: Any) -> list[dict[str, Any]]:
    items = client.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def item(pk: str, sk: str = "META", **attrs: Any) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"N": str(v)} for k, v in attrs.items()}}


def run_scenario(patched: bool) -> dict[str, Any]:
    """The same transactions with moto as shipped and with the helper: the outcomes must match."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                       {"AttributeName": "sk", "KeyType": "RANGE"}])
        for pk in ("a", "b", "c"):
            client.put_item(TableName=TABLE, Item=item(pk, n=1))
        client.put_item(TableName=TABLE, Item=item("a", "EVENT#1", n=1))
        outcome: dict[str, Any] = {"initial": scan(client)}
        context = atomic_transactions() if patched else _nothing()
        with context:
            failing = [
                {"Put": {"TableName": TABLE, "Item": item("new", n=7), "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": TABLE, "Item": item("a", "EVENT#2", n=2)}},
                {"Update": {"TableName": TABLE, "Key": {"pk": {"S": "a"}, "sk": {"S": "META"}},
                            "UpdateExpression": "ADD n :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "b"}, "sk": {"S": "META"}}}},
                {"ConditionCheck": {"TableName": TABLE, "Key": {"pk": {"S": "c"}, "sk": {"S": "META"}},
                                    "ConditionExpression": "n = :two", "ExpressionAttributeValues": {":two": {"N": "2"}}}},
            ]
            with pytest.raises(client.exceptions.TransactionCanceledException) as cancelled:
                client.transact_write_items(TransactItems=failing)
            outcome["reasons"] = [r["Code"] for r in cancelled.value.response["CancellationReasons"]]
            outcome["after_failure"] = scan(client)
            passing = failing[:4] + [{"ConditionCheck": {**failing[4]["ConditionCheck"],
                                                         "ExpressionAttributeValues": {":two": {"N": "1"}}}}]
            client.transact_write_items(TransactItems=passing)
            outcome["after_success"] = scan(client)
        return outcome


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def test_the_helper_commits_all_or_nothing_like_moto():
    shipped, patched = run_scenario(patched=False), run_scenario(patched=True)
    assert patched["reasons"] == ["None", "None", "None", "None", "ConditionalCheckFailed"]
    assert patched["after_failure"] == patched["initial"]
    assert len(patched["after_success"]) == len(patched["initial"]) + 1   # +new, +EVENT#2, -b
    assert {(i["pk"]["S"], i["sk"]["S"]) for i in patched["after_success"]} == {
        ("a", "META"), ("a", "EVENT#1"), ("a", "EVENT#2"), ("c", "META"), ("new", "META")}
    assert patched == shipped


def test_the_helper_is_removed_on_exit():
    import moto.dynamodb.models as ddb_models
    from moto.dynamodb.responses import DynamoHandler

    before = (ddb_models.DynamoDBBackend.transact_write_items, DynamoHandler.call_action, ddb_models.copy)
    with atomic_transactions():
        assert ddb_models.DynamoDBBackend.transact_write_items is not before[0]
    assert (ddb_models.DynamoDBBackend.transact_write_items, DynamoHandler.call_action, ddb_models.copy) == before


def test_kms_keys_made_under_the_patch_still_sign_verify_and_encrypt():
    """Key pairs are made on first use (``key_pairs_on_first_use``): asymmetric keys still sign and
    verify with their own pair, and a symmetric key still encrypts."""
    from chalicelib.local.moto_fidelity import key_pairs_on_first_use

    with mock_aws(), key_pairs_on_first_use():
        kms = boto3.client("kms", region_name="us-east-1")
        signing = [kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"] for _ in range(2)]
        signature = kms.sign(KeyId=signing[0], Message=b"baton", SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
        assert kms.verify(KeyId=signing[0], Message=b"baton", Signature=signature,
                          SigningAlgorithm="RSASSA_PSS_SHA_256")["SignatureValid"] is True
        assert kms.verify(KeyId=signing[1], Message=b"baton", Signature=signature,
                          SigningAlgorithm="RSASSA_PSS_SHA_256")["SignatureValid"] is False
        public = {kms.get_public_key(KeyId=k)["PublicKey"] for k in signing}
        assert len(public) == 2 and public == {kms.get_public_key(KeyId=k)["PublicKey"] for k in signing}
        symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=symmetric, Plaintext=b"secret")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
