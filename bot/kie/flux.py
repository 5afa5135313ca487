"""Flux Kontext's own wire format (kie-api-more.md §3): its record-info.

The create body is flat (schemas.body_with_model: `model` is flux-kontext-pro or
flux-kontext-max): `prompt`, `inputImage` (one URL: edit mode), `aspectRatio` (camelCase),
`outputFormat`, `safetyTolerance` (at most 2 when editing) … as the catalog's input gives them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from bot.kie.schemas import FlagRecord, ResultFile


class FluxResponse(BaseModel):
    """`data.response`: one picture. (`originImageUrl`, BFL's own, lives 10 minutes: unused.)"""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    result_image_url: str | None = Field(default=None, alias="resultImageUrl")


class FluxRecord(FlagRecord):
    """One `flux/kontext/record-info` answer's `data`."""

    response: FluxResponse | None = None

    def files(self) -> list[ResultFile]:
        url = self.response.result_image_url if self.response else None
        return [ResultFile(url)] if isinstance(url, str) and url.strip() else []
