"""How names are built: the model's full name and the tables that belong to it.

Every job receives the catalog, the schema and the registered model's name as the
bundle resolved them for the target (development mode prefixes the model name), and
builds everything else here, so no module keeps a second copy of a naming rule.
"""

from __future__ import annotations

from dataclasses import dataclass

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class ModelRef:
    """A Unity Catalog model ``<catalog>.<schema>.<name>`` and its tables."""

    catalog: str
    schema: str
    name: str

    @classmethod
    def parse(cls, full_name: str) -> ModelRef:
        parts = full_name.split(".")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"{full_name!r} is not a full model name: expected <catalog>.<schema>.<model>")
        return cls(*parts)

    @property
    def full_name(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.name}"

    def uri(self, version: str | int | None = None, alias: str | None = None) -> str:
        """``models:/`` URI of a version, or else of an alias."""
        return f"models:/{self.full_name}/{version}" if version is not None else f"models:/{self.full_name}@{alias}"

    def table(self, suffix: str) -> str:
        """A table that belongs to this model, next to it in the same schema."""
        return f"{self.catalog}.{self.schema}.{self.name}_{suffix}"

    @property
    def predictions_table(self) -> str:
        return self.table("predictions")

    @property
    def monitoring_table(self) -> str:
        return self.table("monitoring")
