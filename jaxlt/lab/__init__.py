"""The synthetic-language lab: languages with planted typology, tasks whose labels survive every
transformation, a tiny mT5 pre-trained on them, and the truth a transfer study should recover.

* `jaxlt.lab.grammar`: the base grammar and the language parameters;
* `jaxlt.lab.data`: the lab's languages, `lab_nli` / `lab_ner` records and pre-training text;
* `jaxlt.lab.tasks`: their declarations in `jaxlt.data.datasets` (seqio tasks on demand);
* `jaxlt.lab.pretrain`: the deterministic pre-training recipe of the shipped lab model;
* `jaxlt.lab.truth`: planted parameters, typology table, chance levels and findings.
"""
