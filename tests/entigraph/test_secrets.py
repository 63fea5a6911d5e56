"""entigraph.secrets: a secret and every long-enough fragment of it are masked in text and logs."""

import logging

from entigraph import secrets
from entigraph.secrets import FRAGMENT, mask

KEY = "sk-live-3Jq8Zr5Wm2Xc7Vb4Nt9Lp6"


def fragments(key=KEY, n=FRAGMENT):
    return [key[i:i + n] for i in range(len(key) - n + 1)]


def test_the_whole_key_and_every_fragment_are_masked():
    assert mask(f"key={KEY}!", [KEY]) == "key=***!"
    assert mask(f"a {KEY[:20]}| b |{KEY[-9:]} c {KEY[5:15]}", [KEY]) == "a ***| b |*** c ***"
    cut = f"error: {'x' * 30}{KEY}"[:45]  # what a cut through the key keeps
    assert mask(cut, [KEY]) == f"error: {'x' * 30}***"
    for fragment in fragments():
        assert fragment not in mask(f"<{fragment}>", [KEY])


def test_short_runs_and_other_text_are_left_alone():
    short = KEY[:FRAGMENT - 1]
    assert mask(f"{short} and {KEY[-3:]}", [KEY]) == f"{short} and {KEY[-3:]}"
    assert mask("nothing to hide", [KEY]) == "nothing to hide"
    assert mask("", [KEY]) == "" and mask(KEY, []) == KEY and mask(KEY, [""]) == KEY
    assert mask("pin 1234 and 91234", ["1234"]) == "pin *** and 9***"  # a short secret: only whole


def test_registered_secrets_are_masked_in_every_log_record(caplog):
    key = "sk-reg-" + "Hq4Ty7Ub2Wn5Ee8Rm1"
    secrets.register(key)
    secrets.register(None)  # no key configured: nothing to register
    assert key in secrets.registered() and mask(f"[{key}]") == "[***]"
    log = logging.getLogger("some.library.nobody.configured")
    with caplog.at_level(logging.INFO):
        log.warning("echo %s", key[:12] + "...")
        log.info("body: %r", {"auth": key[3:]})
        try:
            raise ValueError(f"bad key {key[-10:]}")
        except ValueError:
            log.exception("failed")
        log.info("plain %s %d", "text", 3)
    assert not any(f in caplog.text for f in fragments(key)), caplog.text
    assert "echo ***..." in caplog.text and "bad key ***" in caplog.text
    assert caplog.records[-1].args == ("text", 3)  # untouched records keep their arguments
