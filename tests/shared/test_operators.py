"""Named operator accounts: scrypt hashes made by ``callreel operator-hash``, OPERATORS parsed and checked (#28)."""

import io
import re

import pytest

from callreel.cli import main
from shared.operators import OperatorsError, hash_password, parse_operators, verify_password


def test_a_hash_verifies_its_password_only_and_is_salted():
    stored = hash_password("correct horse battery", log2_n=10)
    assert stored.startswith("scrypt$10$8$1$") and verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterY", stored)
    assert hash_password("correct horse battery", log2_n=10) != stored


def test_operators_are_parsed_and_bad_entries_named_without_their_hash():
    a, b = hash_password("a" * 12, log2_n=10), hash_password("b" * 12, log2_n=10)
    assert parse_operators(f"Alice:{a}, bob:{b},") == {"alice": a, "bob": b}
    for value, problem in (
        (f"alice{a}", "entry 1: write name:hash"),
        (f"alice:{a},alice:{b}", "'alice' is named twice"),
        (f"token:{a}", "the API token's"),
        ("bob:scrypt$30$8$1$c2FsdHNhbHQ$eA", "entry 1 (bob): a hash's scrypt parameters are out of range"),
        ("bob:plaintext", "entry 1 (bob): a hash must read scrypt$"),
    ):
        with pytest.raises(OperatorsError, match=re.escape(problem)) as raised:
            parse_operators(value)
        assert a not in str(raised.value)


def test_settings_refuse_bad_operators_and_operators_without_the_token():
    from shared.settings import SettingsError, load_settings

    with pytest.raises(SettingsError) as raised:
        load_settings({"OPERATORS": "alice:nothing", "CALLREEL_API_TOKEN": ""})
    problems = str(raised.value)
    assert "OPERATORS entry 1 (alice)" in problems and "OPERATORS needs CALLREEL_API_TOKEN" in problems


def test_the_cli_prints_an_entry_from_a_password_on_stdin(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["operator-hash", "Carol"]) == 0
    name, _, stored = capsys.readouterr().out.strip().partition(":")
    assert name == "carol" and verify_password("a long enough password", stored)
    assert parse_operators(f"{name}:{stored}") == {"carol": stored}
