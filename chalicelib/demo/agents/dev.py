"""Demo dev agent: implements the task's feature as its own module with a test.

The word_count feature is written with an off-by-one bug on the first iteration, which QA's
test run catches; the second iteration (after the loop-back) fixes it.
"""

import sys

from _common import ITERATION, PROOFS, WORK, feature, handoff, run

FEATURES = {
    "truncate": ('def truncate(text: str, width: int) -> str:\n'
                 '    """``text`` cut to ``width`` characters, with an ellipsis when cut."""\n'
                 '    return text if len(text) <= width else text[: max(0, width - 1)] + "…"\n',
                 'from textkit.truncate import truncate\n\n\ndef test_truncate():\n'
                 '    assert truncate("hello world", 5) == "hell…"\n    assert truncate("hi", 5) == "hi"\n'),
    "word_count": ('def word_count(text: str) -> int:\n    """How many words ``text`` has."""\n'
                   '    return len(text.split())\n',
                   'from textkit.word_count import word_count\n\n\ndef test_word_count():\n'
                   '    assert word_count("one two  three") == 3\n    assert word_count("") == 0\n'),
    "title_case": ('def title_case(text: str) -> str:\n    """Every word capitalised."""\n'
                   '    return " ".join(w.capitalize() for w in text.split())\n',
                   'from textkit.title_case import title_case\n\n\ndef test_title_case():\n'
                   '    assert title_case("hello big world") == "Hello Big World"\n'),
}
BUGGY = {"word_count": ('def word_count(text: str) -> int:\n    """How many words ``text`` has."""\n'
                        '    return len(text.split(" "))\n')}

name = feature()
if name not in FEATURES:
    print(f"dev: no feature named in the task description ({name!r})")
    sys.exit(1)
code, test = FEATURES[name]
if name in BUGGY and ITERATION == 1:
    code = BUGGY[name]
(WORK / "textkit" / f"{name}.py").write_text('"""' + name.replace("_", " ") + '."""\n\n\n' + code)
(WORK / "tests" / f"test_{name}.py").write_text(test)
run("git", "add", "-A")
(PROOFS / "change.diff").write_text(run("git", "diff", "--cached").stdout)
print(f"dev: wrote textkit/{name}.py and its test (iteration {ITERATION})")
handoff("dev", "qa", f"Implemented {name} in textkit/{name}.py with a unit test.",
        work_done=[(f"textkit/{name}.py", f"the {name} function"), (f"tests/test_{name}.py", "its unit test")],
        decisions=[(f"a module per feature ({name}.py)", ["one big core.py"],
                    "parallel tasks then never conflict when the release merges them")],
        notes="Run the whole suite; the edge cases are empty input and repeated spaces.",
        learnings=["str.split() without an argument collapses repeated whitespace"] if ITERATION > 1 else [])
