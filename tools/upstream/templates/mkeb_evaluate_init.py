"""MKEB's metrics per language (ES, PS, NS, MQ and EasyEdit's token accuracies), for any edited model."""
from .metrics import METRICS
from .reference import UneditedReference, unedited_reference, unedited_references
from .scoring import score_record, score_records
