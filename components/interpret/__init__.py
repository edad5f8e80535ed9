"""Mechanistic-interpretability stages: why English-only DPO detoxifies other languages.

Following the analysis of Li, Yong & Bach 2024 ("Preference Tuning For Toxicity Mitigation
Generalizes Across Languages", arXiv:2406.16235; "XG" in this package), which builds on Lee et
al. 2024 ("A Mechanistic Understanding of Alignment Algorithms: A Case Study on DPO and
Toxicity"), on any causal LM with a preset in :mod:`.architectures`:

1. :mod:`.probe`: a linear toxicity probe on the frozen model's final, mean-pooled hidden state.
2. :mod:`.value_vectors`: the MLP value vectors closest to the probe direction, their activation
   on English prompts and their projection onto the vocabulary (the "toxic neurons").
3. :mod:`.intervention`: shift those neurons' activations and measure toxicity per language.
4. :mod:`.activations`: the neurons' mean activation per language, base model vs tuned model.
5. :mod:`.alignment`: cross-lingual alignment of hidden states per layer, and its correlation
   with each language's drop in toxicity.

Every ``run_*`` function takes paths and config sections, writes its outputs atomically into one
folder and returns a JSON-able summary, so a CLI command or KFP component is a thin call:
:mod:`.runners` resolves ``toy``/``gs://`` sources and the scorer, :mod:`.component` holds the KFP
components, :mod:`.intervention_merge` joins per-language sweeps and :mod:`.report` writes the
HTML/Markdown report.
"""
