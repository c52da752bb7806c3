"""Type stubs of the compiled module haidef_wsi._native."""
from os import PathLike
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt
import pyarrow

__version__: str

class HaidefError(Exception):
    """An error of the haidef-wsi library: reading a slide, decoding a frame, loading or running
    a model. The message names the file, frame, tag or field and what was expected."""

def models() -> List[str]:
    """The names of the models the library knows, the default first."""

def tune_cpu_inference() -> Dict[str, bool]:
    """Tunes the whole process for CPU inference as the Rust examples do (glibc keeps freed
    blocks up to 32 MiB for reuse): faster encoders, a process that keeps its peak heap. Not done
    on import, as it affects every library in the process."""

class Slide:
    """A DICOM whole-slide image: a folder of DICOM files (one series) or one file of it, or a
    series on a DICOMweb server.

    Coordinates passed to `read_region` are in the pixels of the level read (OpenSlide takes
    level-0 coordinates instead). Pickles as what reopens it: its path, or its URL with the
    DICOMweb options (credentials included)."""

    def __init__(
        self,
        source: Union[str, PathLike[str]],
        *,
        series: Optional[str] = None,
        bearer_token: Optional[str] = None,
        basic_auth: Union[Tuple[str, str], str, None] = None,
        ca_cert: Optional[Union[str, PathLike[str]]] = None,
        frames_per_request: Optional[int] = None,
        requests_in_flight: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> None:
        """`source`: a folder (`series` picks the SeriesInstanceUID when it holds several), a file,
        or a DICOMweb series URL (http(s)://host/<root>/studies/<study>/series/<series>, or a study
        URL holding one slide). DICOMweb options: bearer_token or basic_auth ((user, password) or
        "user:password"), ca_cert (PEM of an in-house CA), frames_per_request (64),
        requests_in_flight (4), timeout (seconds per request)."""
    @staticmethod
    def open(source: Union[str, PathLike[str]], **options: Any) -> "Slide": ...
    @property
    def path(self) -> Optional[Path]:
        """The path opened (None for a DICOMweb slide)."""
    @property
    def url(self) -> Optional[str]:
        """The DICOMweb URL opened (None for files)."""
    @property
    def closed(self) -> bool: ...
    def close(self) -> None:
        """Lets the files, connections and caches go; later use raises ValueError."""
    def __enter__(self) -> "Slide": ...
    def __exit__(self, *exc: Any) -> bool: ...
    @property
    def study_instance_uid(self) -> str: ...
    @property
    def series_instance_uid(self) -> str: ...
    @property
    def level_count(self) -> int: ...
    @property
    def level_dimensions(self) -> List[Tuple[int, int]]: ...
    @property
    def level_downsamples(self) -> List[float]: ...
    @property
    def level_mpp(self) -> List[Optional[float]]: ...
    @property
    def level_tile_size(self) -> List[Tuple[int, int]]: ...
    @property
    def warnings(self) -> List[str]: ...
    def read_region(
        self, x: int, y: int, width: int, height: int, level: int = 0, pad: bool = False
    ) -> npt.NDArray[np.uint8]:
        """The rectangle at (x, y) of `level`, in that level's pixels: (height, width, 3) uint8 RGB.
        Outside the level it is an error unless `pad` (then white)."""
    @property
    def associated_images(self) -> List[str]:
        """Kinds of the associated images: LABEL, OVERVIEW, THUMBNAIL."""
    def read_associated(self, kind: str) -> npt.NDArray[np.uint8]:
        """The whole associated image ("label", "overview" or "thumbnail") as (H, W, 3) uint8."""
    def patches(self, level: int = 0, size: int = 224, stride: Optional[int] = None) -> Patches:
        """The level's grid of whole size x size patches every `stride` pixels (default `size`),
        row by row, as (x, y, patch) in that level's pixels."""

class Patches:
    """The patches of one level's grid, row by row: an iterator of (x, y, patch)."""

    @property
    def shape(self) -> Tuple[int, int]:
        """(columns, rows) of the grid."""
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Tuple[int, int, npt.NDArray[np.uint8]]]: ...
    def __next__(self) -> Tuple[int, int, npt.NDArray[np.uint8]]: ...

class Encoder:
    """A foundation-model encoder by name. Without weights, the model's untrained seeded
    stand-in runs, with a warning."""

    def __init__(
        self,
        model: str = "path-foundation",
        weights: Optional[Union[str, PathLike[str]]] = None,
        device: str = "cpu",
        batch_size: int = 32,
    ) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def model_id(self) -> str: ...
    @property
    def embedding_dim(self) -> int: ...
    @property
    def is_trained(self) -> bool: ...
    @property
    def weights_id(self) -> str: ...
    @property
    def input_description(self) -> str: ...
    def embed(
        self, images: Union[npt.NDArray[np.uint8], npt.NDArray[np.uint16], npt.NDArray[np.float32]]
    ) -> npt.NDArray[np.float32]:
        """(N, H, W, C) or (H, W, C) images, channels last -> (N, D) float32 embeddings."""
    def embed_texts(self, texts: Union[str, List[str]]) -> npt.NDArray[np.float32]:
        """Texts -> (N, D) float32 in the image embeddings' space (image-text models: medsiglip).
        An empty text is a ValueError."""
    def embed_audio(
        self,
        clips: Union[
            npt.NDArray[np.float32], npt.NDArray[np.float64], npt.NDArray[np.int16], npt.NDArray[np.int32]
        ],
        rate: int,
    ) -> npt.NDArray[np.float32]:
        """Clips (N, S) or (S,) recorded at `rate` Hz -> (N, D) float32 (audio models: hear).
        Floats are full scale +-1, int16/int32 PCM is scaled as Google's serving does; each clip
        is resampled to the model's rate (scipy.signal.resample) and must then be exactly its
        clip (HeAR: 2 s at 16 kHz)."""

PathArg = Union[str, PathLike[str]]
Progress = Union[bool, Callable[[int, int], Any], None]

def embed_slide(
    slide: Slide,
    out: PathArg,
    encoder: Encoder,
    *,
    level: Optional[int] = None,
    mpp: Optional[float] = None,
    min_tissue: float = 0.5,
    all_patches: bool = False,
    k: int = 6,
    seed: int = 0,
    prompts: Optional[List[str]] = None,
    icc_to_srgb: bool = False,
    skip_unreadable_frames: bool = False,
    batch_size: Optional[int] = None,
    progress: Progress = None,
    table: bool = False,
) -> Union[Dict[str, Any], "pyarrow.Table"]:
    """Embeds the slide's tissue patches into the folder `out` as the slide_heatmap example does
    (embeddings.parquet, heatmap.png, clusters.png); the level by index or nearest `mpp` (default
    1.0 um/px); `prompts` (medsiglip) add a score column and picture each. progress: True
    (default) a tqdm bar if tqdm is installed, False none, or a function of (done, total).
    Ctrl-C stops it cleanly (KeyboardInterrupt). Returns a summary: parquet, outputs, embedded,
    skipped, seconds, trained, patches_total, patches_skipped, unreadable (with
    skip_unreadable_frames: x, y, error), slide_id, level, mpp, tissue_coverage,
    color_transform (paths as pathlib.Path); with table=True the Parquet file as a
    pyarrow.Table (its metadata included)."""

def embed_images(
    inputs: Union[PathArg, List[PathArg]],
    out: PathArg,
    encoder: Encoder,
    *,
    prompts: Optional[List[str]] = None,
    max_pixels: int = ...,
    batch_size: Optional[int] = None,
    progress: Progress = None,
    table: bool = False,
) -> Union[Dict[str, Any], "pyarrow.Table"]:
    """Embeds PNG/JPEG files (folders searched) into the Parquet file `out`, one row per image,
    as the embed_images example does. Unusable files are skipped and listed (summary `skipped`,
    the file's `failed_files`). Returns the summary (parquet, outputs, embedded, skipped,
    seconds, trained) or, with table=True, a pyarrow.Table."""

def embed_audio(
    inputs: Union[PathArg, List[PathArg]],
    out: PathArg,
    encoder: Encoder,
    *,
    hop: float = 1.0,
    max_seconds: float = 1200.0,
    picture: Optional[PathArg] = None,
    batch_size: Optional[int] = None,
    progress: Progress = None,
    table: bool = False,
) -> Union[Dict[str, Any], "pyarrow.Table"]:
    """Embeds the windows of audio recordings (WAV, FLAC, Ogg Vorbis, MP3; folders searched)
    with an audio model (hear) into the Parquet file `out` as the embed_audio example does: mono,
    resampled to the model's rate, clips every `hop` seconds, one row per window. `picture`:
    the first recording's spectrogram and window similarity as PNG. Returns the summary
    (parquet, outputs, embedded, skipped, seconds, trained, picture) or, with table=True, a
    pyarrow.Table."""
