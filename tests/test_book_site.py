"""The book as a site: configuration, table of contents, notebook hygiene, the local extension.

These checks read files only (no build, no browser); ``tests/browser`` tests the built HTML.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
sys.path.insert(0, str(BOOK / "_ext"))

from book_site import results_role, results_table  # noqa: E402
from book_site.profiles_table import attribute_docs, format_setting, profile_rows  # noqa: E402
from book_site.scripts import unique_scripts  # noqa: E402

from helpers.profiles import PROFILES, Profile  # noqa: E402
from helpers.results import record  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "check_notebooks", ROOT / "scripts" / "check_notebooks.py"
)
assert _spec is not None and _spec.loader is not None
check_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_notebooks)

CONFIG: dict[str, Any] = yaml.safe_load((BOOK / "_config.yml").read_text(encoding="utf-8"))
TOC: dict[str, Any] = yaml.safe_load((BOOK / "_toc.yml").read_text(encoding="utf-8"))
REPO_URL = CONFIG["repository"]["url"]
NOTEBOOKS = check_notebooks.book_notebooks(BOOK)
REQUIRED_CITATIONS = {
    "feifei2004caltech101", "chollet2017xception", "selvaraju2017gradcam",
    "ishida2017complementary", "ishida2019complementary", "yu2018biased", "chou2020unbiased",
    "adebayo2018sanity", "petsiuk2018rise", "draelos2020hirescam", "chattopadhay2018gradcampp",
    "wang2020scorecam", "ioffe2015batchnorm",
}  # fmt: skip


def toc_files(toc: dict[str, Any]) -> list[str]:
    """Every file named in a jb-book ``_toc.yml``, root first."""
    files = [toc["root"]]

    def walk(entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            if "file" in entry:
                files.append(str(entry["file"]))
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key, []))

    walk(toc.get("parts", []) + toc.get("chapters", []))
    return files


def source_of(docname: str) -> Path | None:
    """The ``.md`` or ``.ipynb`` file behind a toc entry (``None`` when there is none)."""
    for suffix in ("", ".md", ".ipynb"):
        path = BOOK / f"{docname}{suffix}"
        if path.is_file() and path.suffix in {".md", ".ipynb"}:
            return path
    return None


def colab_link(notebook: Path) -> str:
    repo = CONFIG["repository"]
    owner_repo = REPO_URL.removeprefix("https://github.com/")
    relative = notebook.relative_to(BOOK).as_posix()
    return (
        f"{CONFIG['launch_buttons']['colab_url']}/github/{owner_repo}/blob/{repo['branch']}/"
        f"{repo['path_to_book']}/{relative}"
    )


# --- configuration --------------------------------------------------------------------------


def test_config_is_the_projects_own() -> None:
    assert CONFIG["title"] == "What does a model trained only on wrong labels look at?"
    assert CONFIG["author"] == "The Wrong Labels Book authors"
    assert str(CONFIG["copyright"]) == "2026"
    assert "Jupyter Book community" not in (BOOK / "_config.yml").read_text(encoding="utf-8")


def test_config_builds_from_stored_outputs_only() -> None:
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    assert CONFIG["only_build_toc_files"] is True
    assert "_build" in CONFIG["exclude_patterns"]


def test_config_repository_and_launch_buttons() -> None:
    assert REPO_URL == "https://github.com/wrong-labels/wrong-labels-book"
    assert CONFIG["repository"] == {"url": REPO_URL, "path_to_book": "book", "branch": "main"}
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["html"]["use_repository_button"] is True
    assert CONFIG["html"]["use_download_button"] is True


def test_config_extensions_math_and_bibliography() -> None:
    sphinx = CONFIG["sphinx"]
    for ext in ("sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx-mathjax-offline"):
        assert ext in sphinx["extra_extensions"]
    # The offline MathJax extension is importable under its (hyphenated) module name.
    assert importlib.util.find_spec("sphinx-mathjax-offline") is not None
    assert sphinx["local_extensions"] == {"book_site": "_ext"}
    assert sphinx["config"]["napoleon_numpy_docstring"] is True
    assert {"dollarmath", "amsmath", "colon_fence"} <= set(
        CONFIG["parse"]["myst_enable_extensions"]
    )
    assert CONFIG["bibtex_bibfiles"] == ["references.bib"]


def bib_keys() -> set[str]:
    text = (BOOK / "references.bib").read_text(encoding="utf-8")
    return set(re.findall(r"^@\w+\{([^,\s]+),", text, re.M))


def test_bibliography_has_the_papers_the_book_builds_on() -> None:
    missing = REQUIRED_CITATIONS - bib_keys()
    assert not missing, f"references.bib lacks {sorted(missing)}"


def book_texts() -> dict[Path, str]:
    """The text of every page: Markdown files and the Markdown cells of notebooks."""
    texts = {
        p: p.read_text(encoding="utf-8") for p in BOOK.rglob("*.md") if "_build" not in p.parts
    }
    for nb_path in NOTEBOOKS:
        nb = check_notebooks.load(nb_path)
        texts[nb_path] = "\n".join(
            check_notebooks.text(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"
        )
    return texts


def test_every_citation_is_in_the_bibliography() -> None:
    known = bib_keys()
    for path, text in book_texts().items():
        for keys in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            for key in keys.split(","):
                assert key.strip() in known, (
                    f"{path.name} cites {key.strip()!r}, not in references.bib"
                )


# --- table of contents ----------------------------------------------------------------------


def test_toc_format_and_root() -> None:
    assert TOC["format"] == "jb-book"
    assert TOC["root"] == "intro"


@pytest.mark.parametrize("docname", toc_files(TOC))
def test_every_toc_entry_exists(docname: str) -> None:
    assert source_of(docname) is not None, f"_toc.yml lists {docname!r} but book/ has no such file"


def test_every_notebook_is_in_the_toc() -> None:
    listed = {str(Path(f).with_suffix("")) for f in toc_files(TOC)}
    for notebook in NOTEBOOKS:
        docname = notebook.relative_to(BOOK).with_suffix("").as_posix()
        # only_build_toc_files: a notebook missing from _toc.yml silently drops out of the book.
        assert docname in listed, (
            f"{notebook.name} is not in book/_toc.yml: add '- file: {docname}'"
        )


def test_intro_and_appendix_use_generated_tables() -> None:
    assert "```{results-table}" in (BOOK / "intro.md").read_text(encoding="utf-8")
    assert "```{profiles-table}" in (BOOK / "appendix" / "profiles.md").read_text(encoding="utf-8")


def test_api_appendix_documents_every_helpers_module() -> None:
    api = (BOOK / "appendix" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. automodule:: helpers\.(\w+)$", api, re.M))
    modules = {
        p.stem for p in (ROOT / "src" / "helpers").glob("*.py") if not p.stem.startswith("_")
    }
    assert modules - documented == set(), "add these modules to book/appendix/api.md"
    assert documented - modules == set(), "api.md documents modules that do not exist"


def test_colab_badge_is_a_small_svg() -> None:
    badge = BOOK / "_static" / "colab-badge.svg"
    root = ET.parse(badge).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "Colab" in badge.read_text(encoding="utf-8")
    assert badge.stat().st_size < 4096


# --- notebook hygiene -----------------------------------------------------------------------


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_hygiene(notebook: Path) -> None:
    problems = check_notebooks.check(notebook)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_badge_and_install_line_use_the_configured_repository(notebook: Path) -> None:
    nb = check_notebooks.load(notebook)
    first_md = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    badge = f"[![Open In Colab](_static/colab-badge.svg)]({colab_link(notebook)})"
    assert badge in check_notebooks.text(first_md["source"]), f"first markdown cell lacks {badge}"
    first_code = check_notebooks.text(check_notebooks.code_cells(nb)[0]["source"])
    named = re.findall(r"BOOK_REPOSITORY = \"([^\"]+)\"", first_code)
    assert named == [REPO_URL], f"the setup cell names {named}, expected {REPO_URL}"
    urls = re.findall(r"https://github\.com/[\w./-]+", first_code)
    assert urls == [REPO_URL], f"the repository must be named once in the setup cell: {urls}"
    assert '%pip install -q "git+{BOOK_REPOSITORY}"' in first_code
    assert "report_install(BOOK_REPOSITORY)" in first_code
    colab_block = first_code.split('if "google.colab" in sys.modules:', 1)[1].split("\nfrom ", 1)[0]
    assert "%pip install" in colab_block, "the install must run in Colab only"
    assert "start_run(" in first_code


def image_cells(notebook: Path) -> list[tuple[int, dict[str, Any]]]:
    """Index and cell of every code cell whose stored outputs show an image.

    Glued images are not shown by their cell (myst-nb stores them under
    ``application/papermill.record/...``); a ``{glue:figure}`` gives them their caption.
    """
    cells = check_notebooks.load(notebook)["cells"]
    return [
        (index, cell)
        for index, cell in enumerate(cells)
        if cell["cell_type"] == "code"
        and any(
            mime.startswith("image/")
            for output in cell.get("outputs", [])
            if output.get("output_type") in {"display_data", "execute_result"}
            for mime in output.get("data", {})
        )
    ]


def figure_options(cell: dict[str, Any]) -> dict[str, Any]:
    """The cell's myst-nb figure options (``metadata.mystnb.figure``), empty when it has none."""
    figure = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
    return figure if isinstance(figure, dict) else {}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_a_caption(notebook: Path) -> None:
    # myst-nb wraps a cell's image outputs in a numbered figure with this caption: the
    # caption says what the figure is and what to look at (issue: captions on every figure).
    missing = [
        f"cell {index} ({cell.get('id', 'no id')})"
        for index, cell in image_cells(notebook)
        if not str(figure_options(cell).get("caption", "")).strip()
    ]
    assert not missing, (
        f"{notebook.name}: figures without a caption in {missing}: set the cell's metadata "
        '{"mystnb": {"figure": {"caption": "...", "name": "fig-..."}}}'
    )


def test_figure_caption_names_are_unique_across_the_book() -> None:
    # A figure's name is a Sphinx label, shared by the whole book.
    where: dict[str, list[str]] = {}
    for notebook in NOTEBOOKS:
        for index, cell in image_cells(notebook):
            name = figure_options(cell).get("name")
            if name:
                where.setdefault(str(name).lower(), []).append(f"{notebook.name} cell {index}")
    shared = {name: cells for name, cells in where.items() if len(cells) > 1}
    assert not shared, f"figure names used more than once: {shared}"


def test_no_nbval_test_is_collected_from_the_build(tmp_path: Path) -> None:
    # A copy of the pytest configuration with a chapter and a built copy of it under _build.
    for name in ("pyproject.toml", "conftest.py"):
        (tmp_path / name).write_text((ROOT / name).read_text(encoding="utf-8"), encoding="utf-8")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    for relative in ("book/chapter.ipynb", "book/_build/jupyter_execute/chapter.ipynb"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, tmp_path / relative)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "--nbval", "book/"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "book/chapter.ipynb::Cell 0" in result.stdout, result.stdout + result.stderr
    assert "_build" not in result.stdout


# --- the checker itself: each rule catches what it is for ------------------------------------


def clean_notebook() -> dict[str, Any]:
    manifest = "profile    smoke\nimage_size 71\nbackend    tensorflow\ndevice     CPU\n"
    cells = [
        nbformat.v4.new_markdown_cell("# A chapter"),
        nbformat.v4.new_code_cell(
            'run = start_run("x")', execution_count=1,
            outputs=[nbformat.v4.new_output("stream", name="stdout", text=manifest)],
        ),
        nbformat.v4.new_code_cell("print(2)", execution_count=2,
                                  outputs=[nbformat.v4.new_output("stream", name="stdout", text="2\n")]),
    ]  # fmt: skip
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    plain: dict[str, Any] = json.loads(nbformat.writes(nb))
    return plain


def test_checker_passes_a_clean_notebook(tmp_path: Path) -> None:
    path = tmp_path / "ok.ipynb"
    path.write_text(json.dumps(clean_notebook()), encoding="utf-8")
    assert check_notebooks.check(path) == []
    assert check_notebooks.main([str(path)]) == 0


def _break_error(nb: dict[str, Any]) -> None:
    nb["cells"][2]["outputs"].append(
        {"output_type": "error", "ename": "E", "evalue": "x", "traceback": []}
    )


def _break_widgets(nb: dict[str, Any]) -> None:
    nb["metadata"]["widgets"] = {check_notebooks.WIDGET_STATE: {"version_major": 2}}


def _break_stderr(nb: dict[str, Any]) -> None:
    nb["cells"][2]["outputs"].append(
        {"output_type": "stream", "name": "stderr", "text": "UserWarning: x"}
    )


def _break_manifest(nb: dict[str, Any]) -> None:
    nb["cells"][1]["outputs"] = []


def _break_kernel(nb: dict[str, Any]) -> None:
    nb["metadata"]["kernelspec"]["name"] = "venv"


def _break_path(nb: dict[str, Any]) -> None:
    nb["cells"][2]["outputs"][0]["text"] = "saved to /home/me/data.npz\n"


def _break_unexecuted(nb: dict[str, Any]) -> None:
    nb["cells"][2]["execution_count"] = None


def _break_order(nb: dict[str, Any]) -> None:
    nb["cells"][1]["execution_count"] = 7


BREAKAGES = {
    "error output": (_break_error, True), "widget state without state": (_break_widgets, True),
    "stderr warning": (_break_stderr, False), "no manifest output": (_break_manifest, False),
    "kernelspec": (_break_kernel, False), "local path": (_break_path, False),
    "never executed": (_break_unexecuted, False), "out of order": (_break_order, False),
}  # fmt: skip


@pytest.mark.parametrize("name", BREAKAGES)
def test_checker_catches(tmp_path: Path, name: str) -> None:
    breakage, in_basic = BREAKAGES[name]
    nb = clean_notebook()
    breakage(nb)
    path = tmp_path / "bad.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    assert check_notebooks.check(path) != [], f"the full check missed: {name}"
    assert (check_notebooks.check(path, basic=True) != []) == in_basic
    assert check_notebooks.main([str(path)]) == 1


def test_checker_catches_a_big_notebook(tmp_path: Path) -> None:
    nb = clean_notebook()
    nb["cells"][2]["outputs"].append(
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": "A" * (6 * 2**20)}}
    )
    path = tmp_path / "big.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    assert any("MB" in p for p in check_notebooks.check(path))


# --- numbers in the prose: the {result} role and glued values ---------------------------------

RESULT_ROLE = re.compile(r"\{result\}`([^`]+)`")
GLUE_TEXT = re.compile(r"\{glue:text\}`([^`:]+)(?::[^`]*)?`")
DOC_LINK = re.compile(r"\{doc\}`[^`]*`")  # a chapter's file name is not a number in the text
# What the intro's answer must quote from the store (issue 17): the accuracies of the regular
# model, the article loss and the loss chosen on validation data, and the agreement count.
INTRO_ANSWER_PATHS = {
    "sweep/crossentropy/true_accuracy_mean", "sweep/article/true_accuracy_mean",
    "same_place/article/layers_below", "same_place/forward/layers_below",
}  # fmt: skip


def intro_answer() -> str:
    """The intro's answer section: from its heading to the next heading or directive."""
    intro = (BOOK / "intro.md").read_text(encoding="utf-8")
    start = intro.index("## The answer in short")
    return intro[start : intro.index("```{headline-figure}", start)]


def glued_names(notebook: Path) -> dict[str, str]:
    """Name and stored text of every value a notebook glued (myst-nb's scrapbook outputs)."""
    names = {}
    for cell in check_notebooks.load(notebook)["cells"]:
        for output in cell.get("outputs", []):
            scrap = output.get("metadata", {}).get("scrapbook")
            if scrap:
                text = output.get("data", {}).get("application/papermill.record/text/plain", "")
                names[scrap["name"]] = check_notebooks.text(text)
    return names


@pytest.mark.parametrize("page", sorted(book_texts()), ids=lambda p: p.name)
def test_every_quoted_result_is_in_the_store(page: Path) -> None:
    for text in RESULT_ROLE.findall(book_texts()[page]):
        try:
            results_role.render(text, BOOK / "results")
        except results_role.ResultError as err:
            pytest.fail(f"{page.name} quotes {{result}}`{text}`: {err}")


def test_intro_answer_quotes_the_store() -> None:
    quoted = {text.partition(":")[0] for text in RESULT_ROLE.findall(intro_answer())}
    missing = INTRO_ANSWER_PATHS - quoted
    assert not missing, f"the intro's answer no longer quotes {sorted(missing)}"
    # Numbers in the answer come from the store: no percentage or correlation typed by hand,
    # except chance (one in three) and the original study's image size.
    prose = RESULT_ROLE.sub("", intro_answer())
    typed = set(re.findall(r"\d+\.\d+%?|\d+%", prose)) - {"33.3%"}
    assert not typed, f"numbers typed by hand in the intro's answer: {sorted(typed)}"


def test_intro_verdict_matches_the_stored_results() -> None:
    # The intro and chapter 5 state what the numbers mean in words; a re-run that changes what
    # they mean must change the words too. This fails when that happens: rewrite the verdict in
    # book/intro.md's answer and "How sure are we?", and chapter 5's "What the maps say" and
    # "What we learned".
    def stored(path: str) -> Any:
        return results_role.lookup(path, BOOK / "results")[1]

    bands = ("shallow", "middle", "deep")
    article = {band: stored(f"same_place/article/{band}") for band in bands}
    forward = {band: stored(f"same_place/forward/{band}") for band in bands}
    # "its Grad-CAM maps differ more, at every depth": each band's interval over models and
    # images lies below zero (chapter 5: "each band's lies entirely below zero")
    assert all(article[b]["high"] < 0 for b in bands), f"not clear of chance everywhere: {article}"
    # "and, clear of chance ..., at N of the thirteen residual stages" with chapter 5's "at most
    # stages": with 6 or fewer, say "somewhat more ... only at N" again (as with four seeds)
    assert len(stored("same_place/article/layers_below")) >= 7, "say 'somewhat more' instead"
    # "`forward` ... differ clearly at only N": a minority of the stages
    assert len(stored("same_place/forward/layers_below")) <= 6, "forward's verdict changed"
    # "The forward models sit on the control" (chapter 5), "the loss more than the labels"
    assert forward["middle"]["low"] <= 0 <= forward["middle"]["high"], forward["middle"]
    assert all(article[b]["mean"] < forward[b]["mean"] for b in bands), (article, forward)
    # "How sure are we?": deletion beats a random order at every depth, insertion nowhere.
    for kind in ("regular", "article", "forward"):
        for layer in ("block2_add", "block9_add", "block14_sepconv2_act"):
            deletion = stored(f"faithfulness/{kind}/{layer}/deletion")
            insertion = stored(f"faithfulness/{kind}/{layer}/insertion")
            assert deletion["high"] < 0, f"{kind} {layer}: deletion no longer beats random"
            assert insertion["low"] <= 0, f"{kind} {layer}: insertion now beats random"
    chapter5 = glued_names(BOOK / "05_agreement.ipynb")
    below = stored("same_place/article/layers_below")
    assert chapter5["n_below_article"] == str(len(below)), "chapter 5 and the store differ"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_glued_values_quoted_in_a_chapter_are_stored_in_it(notebook: Path) -> None:
    glued = glued_names(notebook)
    for name in GLUE_TEXT.findall(book_texts()[notebook]):
        assert name in glued, f"{notebook.name} quotes {{glue:text}}`{name}` but never glues it"


def record_for_role(directory: Path, history: bool = True) -> None:
    def put(chapter: str, key: str, value: Any, profile: str = "laptop") -> None:
        record(chapter, key, value, profile=profile, backend="tensorflow", directory=directory)

    put("regular", "test_accuracy", 0.9609375)
    put("agreement", "layers_below_control", [])
    put("agreement", "regular_vs_complementary/deep/spearman", 0.5566)
    put("agreement", "faithfulness", {"regular": 0.228, "complementary": 0.264})
    put("data", "n_test", 128)
    for loss, accuracies in {
        "crossentropy": (0.96, 0.94), "article": (0.98, 0.96), "forward": (0.90, 0.88),
        "scl_exp": (0.80, 0.82),
    }.items():  # fmt: skip
        for seed, accuracy in enumerate(accuracies):
            row = {"loss": loss, "seed": seed, "true_accuracy": accuracy,
                   "pseudo_accuracy": 0.9, "epochs": 10, "wall_time_s": 1.0}  # fmt: skip
            if history:  # validation prefers scl_exp, though forward scores higher on test
                val = 0.95 if loss == "scl_exp" else 0.9
                row |= {"best_epoch": 2, "history": {"val_pseudo_accuracy": [0.5, val]}}
            put("complementary_sweep", f"{loss}/seed{seed}", row)


def test_result_role_reads_the_store(tmp_path: Path) -> None:
    record_for_role(tmp_path)
    shown = {
        "profile": "laptop",
        "regular/test_accuracy:.1%": "96.1%",
        "agreement/regular_vs_complementary/deep/spearman:.2f": "0.56",  # a key with "/"
        "agreement/faithfulness/complementary:.2f": "0.26",  # a field inside a value
        "agreement/layers_below_control:len": "0",
        "agreement/layers_below_control": "none",
        "data/n_test": "128",
        "sweep/seeds": "2",
        "sweep/article/true_accuracy_mean:.1%": "97.0%",
        # The best loss from the literature: neither the reference nor article, even when
        # article is ahead.
        "sweep/best_loss": "forward",
        "sweep/best/true_accuracy_mean:.2f": "0.89",
        # The loss chosen without the test set: highest validation pseudo accuracy.
        "sweep/chosen_loss": "scl_exp",
        "sweep/chosen/true_accuracy_mean:.2f": "0.81",
    }
    for text, expected in shown.items():
        assert results_role.render(text, tmp_path)[0] == expected, text
    assert results_role.render("sweep/best_loss:code", tmp_path) == ("forward", True)
    # The paper profile, once it has a headline number, is quoted instead of laptop.
    record("regular", "test_accuracy", 0.5, profile="paper", backend="jax", directory=tmp_path)
    assert results_role.render("regular/test_accuracy:.0%", tmp_path)[0] == "50%"
    with pytest.raises(results_role.ResultError, match="paper.json has no chapter 'data'"):
        results_role.render("data/n_test", tmp_path)  # paper has no data chapter: no mixing


def test_result_role_chooses_no_loss_without_validation_histories(tmp_path: Path) -> None:
    record_for_role(tmp_path, history=False)
    assert results_role.render("sweep/best_loss", tmp_path)[0] == "forward"
    with pytest.raises(results_role.ResultError, match="no field 'chosen_loss'"):
        results_role.render("sweep/chosen_loss", tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope/x", "no chapter 'nope'"),
        ("regular/nope", "no key 'nope'"),
        ("agreement/faithfulness/nope", "no field 'nope'"),
        ("sweep/nope/true_accuracy_mean", "no field 'nope'"),
        ("regular/test_accuracy", "give a format"),
        ("regular/test_accuracy:len", "needs a list"),
        ("regular/test_accuracy:q", "bad format"),
        ("", "empty path"),
    ],
)
def test_result_role_refuses_what_the_store_cannot_answer(
    tmp_path: Path, text: str, message: str
) -> None:
    record_for_role(tmp_path)
    with pytest.raises(results_role.ResultError, match=message):
        results_role.render(text, tmp_path)


def test_result_role_stops_the_build_on_an_unknown_key(tmp_path: Path) -> None:
    # Without -W: an unknown key is an error of the build, not a warning or a blank.
    src = tmp_path / "src"
    record_for_role(src / "results")
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(BOOK / '_ext')!r})\n"
        "extensions = ['myst_parser', 'book_site']\nexclude_patterns = ['results']\n",
        encoding="utf-8",
    )
    page = "# Page\n\nAccuracy {result}`regular/test_accuracy:.1%`, then {result}`regular/nope`.\n"
    (src / "index.md").write_text(page, encoding="utf-8")
    command = [sys.executable, "-m", "sphinx", "-q", "-b", "html", str(src), str(tmp_path / "out")]
    bad = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0, "an unknown key must stop the build"
    assert "index.md:3: {result}`regular/nope`: laptop.json has no key 'nope'" in bad.stderr


def test_result_role_without_results(tmp_path: Path) -> None:
    with pytest.raises(results_role.ResultError, match="no headline results"):
        results_role.render("regular/test_accuracy:.1%", tmp_path)


# --- the learner's path: what we learned, exercises, glossary, reading a map --------------------

LEARNING_CHAPTERS = (
    "01_data",
    "02_regular",
    "03_complementary",
    "04_gradcam",
    "05_agreement",
    "06_agreement_lab",
    "07_gap",
    "08_four_classes",
)
GLOSSARY = BOOK / "appendix" / "glossary.md"
# Terms the chapters rely on (issue 17): each needs a glossary entry.
REQUIRED_TERMS = {
    "complementary label", "pseudo accuracy", "logit", "batchnorm statistics",
    "precise batchnorm", "spearman rank correlation", "iou", "top-20% iou",
    "bootstrap confidence interval", "deletion and insertion curves", "grad-cam",
}  # fmt: skip


def markdown_cells(notebook: Path) -> list[str]:
    nb = check_notebooks.load(notebook)
    return [check_notebooks.text(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


def glossary_terms() -> set[str]:
    """Every term the glossary defines, lower-case (Sphinx matches terms case-insensitively)."""
    text = GLOSSARY.read_text(encoding="utf-8")
    body = text[text.index("```{glossary}") : text.rindex("```")]
    lines = [line for line in body.splitlines()[1:] if line and not line.startswith(":")]
    return {line.strip().lower() for line in lines if not line[0].isspace()}


@pytest.mark.parametrize("chapter", LEARNING_CHAPTERS)
def test_chapter_ends_with_what_we_learned_and_exercises(chapter: str) -> None:
    cells = markdown_cells(BOOK / f"{chapter}.ipynb")
    learned, exercises = cells[-2], cells[-1]
    assert learned.startswith("## What we learned"), f"{chapter}: no closing 'What we learned'"
    assert exercises.startswith("## Exercises"), f"{chapter}: no exercises at the end"
    questions = re.findall(r"^\d+\. \*\*", exercises, re.M)
    solutions = re.findall(r"^:::\{admonition\} Solution\n:class: dropdown$", exercises, re.M)
    # Chapters 2-5 add exercises that change their written-out code (issue 30): up to five.
    assert 2 <= len(questions) <= 5, f"{chapter}: {len(questions)} exercises, expected 2 to 5"
    assert len(solutions) == len(questions), f"{chapter}: every exercise needs a hidden solution"
    # A number in the summary is quoted (glue or the results store), never typed; chapter
    # numbers and the count of layers (13, fixed by the architecture) are not results.
    prose = GLUE_TEXT.sub("", RESULT_ROLE.sub("", learned))
    prose = re.sub(r"chapter \d|the 13 layers", "", DOC_LINK.sub("", prose))
    assert not re.findall(r"\d", prose), f"{chapter}: numbers typed by hand in 'What we learned'"


def test_glossary_is_in_the_book_and_defines_the_terms() -> None:
    assert "appendix/glossary" in toc_files(TOC)
    missing = REQUIRED_TERMS - glossary_terms()
    assert not missing, f"the glossary lacks {sorted(missing)}"


def test_every_linked_term_is_in_the_glossary() -> None:
    defined = glossary_terms()
    linked = 0
    for path, text in book_texts().items():
        for target in re.findall(r"\{term\}`([^`]+)`", text):
            target = re.sub(r"^.*<([^>]+)>$", r"\1", target.replace("\n", " ")).strip().lower()
            assert target in defined, f"{path.name} links {target!r}, not in the glossary"
            linked += 1
    assert linked > 0
    for chapter in LEARNING_CHAPTERS:
        assert "{term}`" in book_texts()[BOOK / f"{chapter}.ipynb"], f"{chapter} links no term"


def test_gradcam_chapter_says_how_to_read_a_map() -> None:
    nb = check_notebooks.load(BOOK / "04_gradcam.ipynb")
    cells = nb["cells"]
    first_figure = next(
        i for i, c in enumerate(cells)
        if c["cell_type"] == "code" and "explorer_grid(" in check_notebooks.text(c["source"])
    )  # fmt: skip
    before = check_notebooks.text(cells[first_figure - 1]["source"])
    assert ":::{admonition} How to read a Grad-CAM map" in before
    for point in ("red", "own maximum", "3 × 3", "1/32"):
        assert point in before, f"the reading box does not explain {point!r}"


# --- the local Sphinx extension --------------------------------------------------------------


def test_results_table_prefers_paper_then_laptop(tmp_path: Path) -> None:
    profile, entries = results_table.headline_entries(tmp_path)
    assert profile is None and set(entries.values()) == {None}
    record(
        "regular", "test_accuracy", 0.9, profile="laptop", backend="tensorflow", directory=tmp_path
    )
    profile, entries = results_table.headline_entries(tmp_path)
    assert profile == "laptop"
    assert entries["regular"]["value"] == 0.9 and entries["complementary"] is None
    record(
        "complementary", "test_accuracy", 0.8, profile="paper", backend="jax", directory=tmp_path
    )
    profile, entries = results_table.headline_entries(tmp_path)
    assert profile == "paper" and entries["regular"] is None
    assert "profile paper" in results_table.provenance(profile, entries)
    record("regular", "test_accuracy", [0.9, 0.8], profile="paper", seed=0, backend="jax",
           directory=tmp_path)  # fmt: skip
    _, entries = results_table.headline_entries(tmp_path)
    assert "regular: jax backend, 2 seeds" in results_table.provenance("paper", entries)


def test_results_table_formats_accuracies() -> None:
    assert results_table.format_accuracy(0.9375) == "93.75%"
    assert results_table.format_accuracy([0.9]) == "90.00% (1 seed)"
    assert results_table.format_accuracy([0.9, 0.8]) == "85.00% ± 7.07 (2 seeds)"
    bad: Any
    for bad in (93.75, -0.1, "0.9", True, [], float("nan")):
        with pytest.raises(ValueError):
            results_table.format_accuracy(bad)


def test_original_numbers_are_the_published_ones() -> None:
    assert results_table.ORIGINAL == {"regular": "93.75%", "complementary": "91.41%"}
    assert results_table.ORIGINAL_FOUR_CLASSES == ("not reported", "about 60%")


def test_the_three_class_row_is_the_mean_over_every_seed_of_the_sweep(tmp_path: Path) -> None:
    assert results_table.sweep_accuracies(tmp_path, None) == {}
    for key, acc in (("crossentropy/seed0", 0.9), ("crossentropy/seed1", 0.8),
                     ("crossentropy/seed10", 0.7), ("article/seed0", 0.6),
                     ("article/seed0/image_size160", 0.1), ("crossentropy/summary", 0.5)):  # fmt: skip
        loss, _, rest = key.partition("/")
        value: dict[str, object] = (
            {"loss": loss, "true_accuracy": acc}
            if "summary" not in key
            else {"true_accuracy_mean": acc}
        )
        if rest.count("/"):  # a run with an overridden profile field records it
            value["overrides"] = {"image_size": 160}
        record("complementary_sweep", key, value, profile="laptop", backend="tensorflow",
               directory=tmp_path)  # fmt: skip
    swept = results_table.sweep_accuracies(tmp_path, "laptop")
    assert swept == {"regular": [0.9, 0.8, 0.7], "complementary": [0.6]}
    assert results_table.format_accuracy(swept["regular"]) == "80.00% ± 10.00 (3 seeds)"


def test_four_class_rows_follow_the_three_class_profile(tmp_path: Path) -> None:
    assert results_table.four_class_row(tmp_path, None) is None
    assert results_table.four_class_row(tmp_path, "laptop") is None  # chapter 8 not run yet
    record("four_classes", "article_test_accuracy", [0.6, 0.7], profile="laptop",
           backend="tensorflow", directory=tmp_path)  # fmt: skip
    ours, original = results_table.four_class_row(tmp_path, "laptop") or []
    assert ours == [
        "This book, four classes (laptop profile, article loss)",
        results_table.NOT_RUN,
        "65.00% ± 7.07 (2 seeds)",
    ]
    assert original == ["Original study, four classes", "not reported", "about 60% (one run)"]
    assert results_table.four_class_row(tmp_path, "paper") is None  # never another profile's
    record("four_classes", "regular_test_accuracy", [93.0], profile="laptop",
           backend="tensorflow", directory=tmp_path)  # fmt: skip
    with pytest.raises(ValueError, match="regular_test_accuracy"):
        results_table.four_class_row(tmp_path, "laptop")


def test_duplicate_inline_scripts_are_dropped() -> None:
    from sphinx.builders.html._assets import _JavaScript

    thebe = "const THEBE_JS_URL = 'x'"
    is_async: dict[str, Any] = {"async": "async"}
    scripts = [
        _JavaScript("_static/doctools.js", priority=200),
        _JavaScript(None, body=thebe),  # type: ignore[arg-type]  # what app.add_js_file passes
        _JavaScript("_static/sphinx-thebe.js", **is_async),
        _JavaScript("", body=thebe),  # what prepare_writing re-adds
        _JavaScript("", body="var other = 1"),
    ]
    kept = unique_scripts(scripts)
    assert kept == [scripts[0], scripts[1], scripts[2], scripts[4]]


def test_profiles_table_comes_from_the_profiles() -> None:
    docs = attribute_docs(Profile)
    assert docs["image_size"].startswith("Side of the square input")
    header, rows = profile_rows(PROFILES)
    assert header == ["Setting", *PROFILES, "Meaning"]
    by_setting = {row[0]: row[1:-1] for row in rows}
    assert by_setting["image size"] == [str(p.image_size) for p in PROFILES.values()]
    assert by_setting["seeds"] == [format_setting(p.seeds) for p in PROFILES.values()]
    assert format_setting(None) == "all" and format_setting((0, 1)) == "0, 1"


def chapter_prose() -> dict[str, str]:
    """The markdown of every chapter (intro and notebooks), by file name."""
    prose = {"intro.md": (BOOK / "intro.md").read_text(encoding="utf-8")}
    for notebook in NOTEBOOKS:
        cells = check_notebooks.load(notebook)["cells"]
        prose[notebook.name] = "\n".join(
            check_notebooks.text(c["source"]) for c in cells if c["cell_type"] == "markdown"
        )
    return prose


LOGISTICS = ("nohup", "--results-dir")  # a background run and a results folder: the appendix's


def test_no_chapter_prose_shows_run_logistics() -> None:
    """Queues, background runs and results folders live in the appendix, not in the story."""
    queues = [p.name for p in (ROOT / "scripts" / "runs").glob("*.txt")]
    assert queues, "scripts/runs/ holds the queue files"
    for name, text in chapter_prose().items():
        for banned in (*LOGISTICS, *queues):
            assert banned not in text, f"{name} shows {banned!r}: move it to appendix/reproducing"
    appendix = (BOOK / "appendix" / "reproducing.md").read_text(encoding="utf-8")
    assert all(queue in appendix for queue in queues), "the appendix lists every queue"


def test_no_chapter_prints_a_background_run() -> None:
    """What a chapter's code prints is on the page too: no ``nohup`` command, no results folder."""
    for notebook in NOTEBOOKS:
        for cell in check_notebooks.load(notebook)["cells"]:
            if cell["cell_type"] != "code":
                continue
            shown = [check_notebooks.text(cell["source"])]
            for output in cell.get("outputs", []):
                shown.append(check_notebooks.text(output.get("text", "")))
                shown.append(check_notebooks.text(output.get("data", {}).get("text/plain", "")))
            for banned in LOGISTICS:
                assert banned not in "\n".join(shown), (
                    f"{notebook.name}, cell {cell.get('id')}: shows {banned!r}; "
                    "the commands belong in appendix/reproducing"
                )


def test_the_intros_short_answer_is_short() -> None:
    text = (BOOK / "intro.md").read_text(encoding="utf-8")
    answer = text.split("## The answer in short", 1)[1].split(":::{admonition} How sure", 1)[0]
    # Counted as the reader sees it: each quoted result as the text the store gives it.
    shown = {q: results_role.render(q, BOOK / "results")[0] for q in RESULT_ROLE.findall(answer)}
    numbers = [q for q, text in shown.items() if re.search(r"\d", text)]
    plain = RESULT_ROLE.sub(lambda m: shown[m.group(1)], answer)
    typed = re.findall(r"\d+(?:\.\d+)?%?", RESULT_ROLE.sub("N", DOC_LINK.sub("", answer)))
    assert len(plain.split()) <= 125, f"{len(plain.split())} words; the issue asks for about 120"
    assert len(numbers) + len(typed) <= 4, f"numbers: {numbers + typed}"
    assert "How sure are we?" in text
