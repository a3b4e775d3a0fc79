"""Published FTVSR numbers, as data with their source, for the report's paper-layout tables.

Only values that could be traced to a public source are listed, each with that source. A
(dataset, CRF) cell that is not here is shown as missing ("–") in the report: never fill one in
from memory.

What the sources searched gave:
- the FTVSR repository's README (researchmm/FTVSR): no numbers, only the test commands and the
  CRF levels (uncompressed, 15, 25, 35);
- Papers with Code, "Learning Spatiotemporal Frequency-Transformer for Compressed Video
  Super-Resolution": the REDS4 4x leaderboard entry of the ECCV 2022 paper, 31.82 / 0.8960;
- CAVSR (Wang et al., "Compression-Aware Video Super-Resolution", CVPR 2023), whose comparison
  (slide "Evaluation" of `.doc/PPT.pdf` and the poster in github.com/aprBlue/CAVSR) has an
  FTVSR row for Vid4 (Y channel) and REDS4 (RGB) at CRF 15 / 25 / 35. It does not say whether
  the numbers were copied from the FTVSR paper or re-measured: they are "FTVSR as reported by
  CAVSR";
- Video-Super-Resolution-Rankings (github.com/Tang1705, a community list citing the ECCV paper):
  Vid4 uncompressed 28.31 / 0.860, with no channel stated;
- the paper's own tables (arXiv 2208.03012) could not be read from here. Replace these entries
  with the paper's table (and its number as `source`) once read.

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
    trained_on: str  # the training set of the published model: "REDS" (REDS4) or "Vimeo-90K" (Vid4)


# `data.source` -> the training set's name as PublishedResult.trained_on writes it.
TRAINING_SETS = {"reds": "REDS", "vimeo90k": "Vimeo-90K", "sample": "the embedded sample"}


PAPERS_WITH_CODE = (
    "Papers with Code, REDS4 4x leaderboard entry of Qiu et al., ECCV 2022 "
    "(paperswithcode.com/paper/learning-spatiotemporal-frequency-transformer)"
)

CAVSR = (
    "FTVSR as reported by CAVSR (Wang et al., CVPR 2023), slide 'Evaluation' of github.com/aprBlue/CAVSR "
    ".doc/PPT.pdf; Vid4 on Y, REDS4 on RGB"
)
RANKINGS = (
    "github.com/Tang1705/Video-Super-Resolution-Rankings README (a community list citing the ECCV 2022 paper; "
    "channel not stated)"
)

PUBLISHED_RESULTS: tuple[PublishedResult, ...] = (
    PublishedResult(
        dataset="REDS4", crf="raw", method="FTVSR", psnr=31.82, ssim=0.8960, source=PAPERS_WITH_CODE, trained_on="REDS"
    ),
    PublishedResult(
        dataset="REDS4", crf="crf15", method="FTVSR", psnr=30.89, ssim=0.864, source=CAVSR, trained_on="REDS"
    ),
    PublishedResult(
        dataset="REDS4", crf="crf25", method="FTVSR", psnr=28.10, ssim=0.786, source=CAVSR, trained_on="REDS"
    ),
    PublishedResult(
        dataset="REDS4", crf="crf35", method="FTVSR", psnr=24.83, ssim=0.674, source=CAVSR, trained_on="REDS"
    ),
    PublishedResult(
        dataset="Vid4", crf="raw", method="FTVSR", psnr=28.31, ssim=0.860, source=RANKINGS, trained_on="Vimeo-90K"
    ),
    PublishedResult(
        dataset="Vid4", crf="crf15", method="FTVSR", psnr=27.50, ssim=0.826, source=CAVSR, trained_on="Vimeo-90K"
    ),
    PublishedResult(
        dataset="Vid4", crf="crf25", method="FTVSR", psnr=25.51, ssim=0.732, source=CAVSR, trained_on="Vimeo-90K"
    ),
    PublishedResult(
        dataset="Vid4", crf="crf35", method="FTVSR", psnr=22.79, ssim=0.561, source=CAVSR, trained_on="Vimeo-90K"
    ),
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
