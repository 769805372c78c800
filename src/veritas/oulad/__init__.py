"""The Open University Learning Analytics Dataset (OULAD): import it into Veritas, evaluate on it.

files.py reads and validates the CSVs, importer.py writes them through the product's tables
(`veritas import oulad DIR`), evaluate.py scores the imported students with the production
dropout model at temporal cutoffs (`veritas eval dropout DIR`).
"""
