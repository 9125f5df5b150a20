"""Every report of one run folder (results/<dataset>/<profile>/), from results/ only."""
from pathlib import Path

from .lasar_tables import write_lasar_tables
from .table1 import write_table1


def write_reports(root, shared):
    root = Path(root)
    paths = write_table1(root, shared["eval"])
    paths += write_lasar_tables(root)
    return paths
