"""Published FTVSR numbers, as data with their source, for the report's paper-layout tables.

Only values that could be traced to a public source are listed. A (dataset, CRF) cell that is
not here is shown as missing ("–") in the report: never fill one in from memory.

Sources searched for this table (this file records what they gave):
- the FTVSR repository's README (researchmm/FTVSR, every commit): no numbers, only the test
  commands and the CRF levels (uncompressed, 15, 25, 35);
- Papers with Code, "Learning Spatiotemporal Frequency-Transformer for Compressed Video
  Super-Resolution" (https://paperswithcode.com/paper/learning-spatiotemporal-frequency-transformer):
  the REDS4 4x leaderboard entry of the ECCV 2022 paper, PSNR 31.82 / SSIM 0.8960 (uncompressed
  input, RGB, no border crop, the benchmark's standard protocol);
- the paper's own tables (Qiu et al., ECCV 2022, arXiv 2208.03012) could not be read from here:
  the CRF 15 / 25 / 35 columns and the Vid4 row are therefore missing. Add them with the table
  number as `source` once read from the paper.

CRF labels follow the data layout: "raw" (uncompressed LR), "crf15", "crf25", "crf35".
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedResult:
    """One published cell: mean PSNR (dB) / SSIM of `method` on `dataset` at compression `crf`."""

    dataset: str  # "REDS4" or "Vid4"
    crf: str  # "raw", "crf15", "crf25", "crf35"
    method: str  # "FTVSR"
    psnr: float
    ssim: float | None
    source: str


PAPERS_WITH_CODE = (
    "Papers with Code, REDS4 4x leaderboard entry of Qiu et al., ECCV 2022 "
    "(paperswithcode.com/paper/learning-spatiotemporal-frequency-transformer)"
)

PUBLISHED_RESULTS: tuple[PublishedResult, ...] = (
    PublishedResult(dataset="REDS4", crf="raw", method="FTVSR", psnr=31.82, ssim=0.8960, source=PAPERS_WITH_CODE),
)

# The paper-layout table's columns: datasets and compression levels of the paper's comparison.
PAPER_DATASETS: tuple[str, ...] = ("REDS4", "Vid4")
PAPER_CRFS: tuple[str, ...] = ("raw", "crf15", "crf25", "crf35")


def lookup(
    dataset: str, crf: str | int, method: str = "FTVSR", results: tuple[PublishedResult, ...] = PUBLISHED_RESULTS
) -> PublishedResult | None:
    """The published cell for (dataset, crf, method), matched case-insensitively; None if unknown.

    `crf` may be a label ("raw", "crf25") or the bare level ("25", as the data folders name it).
    """
    crf = str(crf).strip().lower()
    crf = f"crf{crf}" if crf.isdigit() else crf
    for result in results:
        if (result.dataset.lower(), result.crf.lower(), result.method.lower()) == (
            dataset.lower(),
            crf.lower(),
            method.lower(),
        ):
            return result
    return None
