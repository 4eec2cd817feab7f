"""Request and response models: validation for POST bodies and the OpenAPI documentation."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class GenerateRequest(BaseModel):
    """Body of ``POST /generate`` (the query of ``GET /generate`` has the same fields)."""

    # no json_schema_extra examples: BentoML 1.4's OpenAPI Schema class rejects the key
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Model name (see GET /models); optional when one model can generate")
    n: int = Field(16, description="Number of tiles, 1..GANZOO_MAX_N (default max 256)")
    seed: int | None = Field(None, description="Seed >= 0; random when omitted. Echoed in the X-Seed header")
    label: int | None = Field(
        None, description="Class for every tile (conditional models); default: tile i gets i % classes"
    )
    psi: float | None = Field(None, description="Truncation psi in [0, 2], only for models with a psi input; default 1")
    filter: str | None = Field(
        None, description="critic: served through the model's critic (rejection sampling; the default for models "
        "that ship one); none: the generator's own samples")


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer of the ganzoo routes."""

    error: str = Field(description="What is wrong, in words")
    detail: Any = Field(None, description="Machine-readable detail: known models/directions, validation errors, ...")


class EncodeResponse(BaseModel):
    model: str
    version: str
    code: list[float] = Field(description="Latent code of the image (length latent_dim)")


class FailedModel(BaseModel):
    """A stored model that is not served (``GET /models?include_failed=true``)."""

    name: str
    status: str = Field("failed", description="always 'failed'")
    reason: str = Field(description="Why it failed to load: missing file, digest mismatch, contract violation, ...")


class ModelInfo(BaseModel):
    """What ``GET /models`` reports for each served model (from card.json and the graphs)."""

    name: str
    status: str = Field("served", description="'served' (failed models: see FailedModel)")
    version: str
    variant: str
    task: str = Field(description="generate | translate | reconstruct")
    capabilities: list[str] = Field(
        description="Routes it serves: generate, interpolate, mix, encode, reconstruct, translate"
    )
    roles: list[str] = Field(description="ONNX graphs: generator, mapping, synthesis, encoder, a2b, b2a")
    inputs: dict[str, list[str]] = Field(description="Input names per graph")
    image_size: int | None = None
    channels: int | None = None
    latent_dim: int | None = None
    num_classes: int = 0
    classes: list[Any] = Field(default_factory=list)
    conditional: bool = False
    psi: bool = Field(False, description="Whether psi= (truncation) is accepted")
    style_layers: int | None = Field(None, description="Layers of w (StyleGAN), the range of crossover=")
    domains: list[str] = Field(default_factory=list)
    directions: list[str] = Field(default_factory=list, description="Values for /translate?direction=")
    filters: list[str] = Field(default_factory=lambda: ["none"],
                               description="Values for /generate?filter=, the default first (critic: DRS)")
    provider: str = Field(description="ONNX Runtime execution provider in use")
    providers: list[str] = Field(default_factory=list)
    precision: str = Field("fp32", description="fp32, or fp16 where half-precision graphs are loaded (CUDA)")
    sha256: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    dataset: str | None = None
    steps: int | None = None
    created: str | None = None
    variant_metadata: dict[str, Any] = Field(
        default_factory=dict, description="What the variant's metadata() added to the card (e.g. StyleGAN's num_layers)"
    )
    plugin: dict[str, str] | None = Field(None, description="Distribution and version of the package of the variant")
