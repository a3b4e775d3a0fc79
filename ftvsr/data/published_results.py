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

CRF labels follow the data layout: "raw" (uncompressed LR), "crf15", "crf25", "crf35". Each
number keeps the digits its source prints; each cell also names what a comparison with it must
share: the training set, the degradation of the LR input and the channel it was scored on.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class PublishedResult:
    """One published cell: mean PSNR (dB) / SSIM of `method` on `dataset` at compression `crf`.

    PSNR and SSIM are `Decimal`s of the source's text ("0.864", "0.8960"), so a report prints each
    with the source's digits: a float would turn "0.8960" into 0.896.
    """

    dataset: str  # "REDS4" or "Vid4"
    crf: str  # "raw", "crf15", "crf25", "crf35"
    method: str  # "FTVSR"
    psnr: Decimal
    ssim: Decimal | None
    source: str
    trained_on: str  # the training set of the published model: "REDS" (REDS4) or "Vimeo-90K" (Vid4)
    degradation: str  # of the LR input, as `data.degradation` names it: "bi" (bicubic) or "bd" (blur-down)
    channel: str  # what PSNR/SSIM were computed on: "RGB" or "Y"

    def __post_init__(self) -> None:
        # A float has already lost the source's digits ("0.8960" -> 0.896): only Decimals come in.
        if not isinstance(self.psnr, Decimal) or not isinstance(self.ssim, Decimal | None):
            raise TypeError("PublishedResult: give PSNR and SSIM as Decimals of the source's text: Decimal('0.8960')")


def decimals(value: Decimal) -> int:
    """How many digits a published number has after its decimal point ("0.8960" -> 4)."""
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


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


# The published protocol: REDS4 is read from REDS' own bicubic x4 LR (BI) and scored on RGB; Vid4
# is the BD set scored on Y. RANKINGS does not state the channel of its Vid4 cell: it is taken to
# follow the paper's Vid4 protocol (Y), as CAVSR's Vid4 row does.
def _reds4(crf: str, psnr: str, ssim: str, source: str) -> PublishedResult:
    return PublishedResult("REDS4", crf, "FTVSR", Decimal(psnr), Decimal(ssim), source, "REDS", "bi", "RGB")


def _vid4(crf: str, psnr: str, ssim: str, source: str) -> PublishedResult:
    return PublishedResult("Vid4", crf, "FTVSR", Decimal(psnr), Decimal(ssim), source, "Vimeo-90K", "bd", "Y")


# PSNR and SSIM as the sources print them.
PUBLISHED_RESULTS: tuple[PublishedResult, ...] = (
    _reds4("raw", "31.82", "0.8960", PAPERS_WITH_CODE),
    _reds4("crf15", "30.89", "0.864", CAVSR),
    _reds4("crf25", "28.10", "0.786", CAVSR),
    _reds4("crf35", "24.83", "0.674", CAVSR),
    _vid4("raw", "28.31", "0.860", RANKINGS),
    _vid4("crf15", "27.50", "0.826", CAVSR),
    _vid4("crf25", "25.51", "0.732", CAVSR),
    _vid4("crf35", "22.79", "0.561", CAVSR),
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
