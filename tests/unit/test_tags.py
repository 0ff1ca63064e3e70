"""Tag validation: invalid or missing DR tags are reported with every problem, never guessed."""

from hypothesis import given
from hypothesis import strategies as st

from drcore.tags import DrTags, TagProblem, parse_dr_tags
from events.schemas import Priority, Strategy

GOOD = {
    "dr:enabled": "true",
    "dr:priority": "critical",
    "dr:wave": "1",
    "dr:recovery-strategy": "drs",
    "dr:rto-target": "15",
    "dr:rpo-target": "15",
}


def test_given_complete_tags_then_they_parse() -> None:
    parsed = parse_dr_tags(GOOD)
    assert parsed == DrTags(
        priority=Priority.CRITICAL,
        wave=1,
        strategy=Strategy.DRS,
        rto_target_minutes=15,
        rpo_target_minutes=15,
    )


def test_given_several_bad_tags_then_every_problem_is_named() -> None:
    problems = parse_dr_tags(
        GOOD | {"dr:wave": "zero", "dr:priority": "urgent"} | {"dr:rpo-target": ""}
    )
    assert isinstance(problems, list)
    by_tag = {p.tag: p for p in problems}
    assert set(by_tag) == {"dr:wave", "dr:priority", "dr:rpo-target"}
    assert "'zero'" in by_tag["dr:wave"].message
    assert "urgent" in by_tag["dr:priority"].message
    assert by_tag["dr:rpo-target"].code == "MISSING_TAG"


def test_given_dr_disabled_then_not_enabled_is_reported() -> None:
    problems = parse_dr_tags(GOOD | {"dr:enabled": "false"})
    assert problems == [
        TagProblem("NOT_ENABLED", "dr:enabled", "dr:enabled is 'false', not 'true'")
    ]


@given(st.dictionaries(st.sampled_from(sorted(GOOD)), st.text(max_size=6)))
def test_any_tag_soup_parses_or_explains_itself(overrides: dict[str, str]) -> None:
    result = parse_dr_tags(GOOD | overrides)
    if isinstance(result, list):
        assert result and all(p.message and p.tag in GOOD for p in result)
    else:
        assert result.wave >= 1 and result.rto_target_minutes >= 1


def test_given_a_unicode_digit_then_it_is_an_invalid_tag_not_a_crash() -> None:
    problems = parse_dr_tags(GOOD | {"dr:rpo-target": "²"})
    assert isinstance(problems, list) and problems[0].code == "INVALID_TAG"
