"""Where the bundled data files live (the package's own ``data/`` folder)."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
BUNDLED_TRACE = DATA_DIR / "traces" / "azure_llm_2023_code.csv"
BUNDLED_POLICY = DATA_DIR / "policies" / "default.yaml"
BUNDLED_SCENARIO = DATA_DIR / "scenarios" / "default.yaml"
BUNDLED_CATALOG = DATA_DIR / "instances.yaml"
