"""gdbook.expect_error: re-raised in a notebook, caught and printed in a script."""

import pytest

from gdbook.errors import expect_error, in_notebook


def test_script_mode_catches_and_prints(capsys):
    with expect_error(ValueError, reraise=False) as caught:
        raise ValueError("bad value\nsecond line")
    assert caught.type_name == "ValueError"
    assert caught.message == "bad value\nsecond line"
    assert capsys.readouterr().out == "ValueError: bad value\n"


def test_notebook_mode_reraises_but_records():
    with pytest.raises(KeyError):
        with expect_error(KeyError, reraise=True) as caught:
            raise KeyError("k")
    assert caught.type_name == "KeyError"


def test_other_errors_pass_through_untouched():
    with pytest.raises(TypeError):
        with expect_error(ValueError, reraise=False):
            raise TypeError("not the expected one")


def test_no_error_is_visible(capsys):
    with expect_error(ValueError, reraise=False) as caught:
        pass
    assert caught.error is None and caught.message == "" and caught.type_name == "no error"
    assert "no error" in capsys.readouterr().out


def test_pytest_is_not_a_notebook():
    assert not in_notebook()
