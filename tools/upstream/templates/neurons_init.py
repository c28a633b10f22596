"""Knowledge neurons of a fact (MEMLA paper, arXiv 2406.11566, sections 3.1-3.2)."""
from .cache import NeuronCache, neuron_bounds
from .fast import attribute_fast
from .reference import attribute_reference
from .selection import find_neurons
from .sets import build_neuron_sets
