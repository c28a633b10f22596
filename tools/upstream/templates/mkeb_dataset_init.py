"""MKEB, the multilingual knowledge-editing benchmark of MEMLA (arXiv 2406.11566): records, loading, conversion."""
from .dataset import MKEBDataset, request_from_record
from .loader import load_mkeb, read_test_ids
from .schema import LANGS, EditFact, MKEBRecord
