from core.render import fmt_age, fmt_duration, fmt_pct, fmt_price, table_lines
from core.reply import Table


def test_formats() -> None:
    assert fmt_price(91234.4) == "91,234"
    assert fmt_price(3456.78) == "3,456.8"
    assert fmt_price(12.3456) == "12.346"
    assert fmt_price(None) == "—"
    assert fmt_pct(0.01234) == "+1.23%"
    assert fmt_pct(-0.0001, 4) == "-0.0100%"
    assert fmt_age(5) == "5s"
    assert fmt_age(600) == "10m"
    assert fmt_duration(3 * 3600 + 12 * 60 + 5) == "3h12m"


def test_table_alignment() -> None:
    t = Table(header=("venue", "rate"), rows=(("okx", "+0.01%"), ("binance-cm", "-0.005%")), align="lr")
    lines = table_lines(t)
    assert lines == ["venue         rate", "okx         +0.01%", "binance-cm -0.005%"]
