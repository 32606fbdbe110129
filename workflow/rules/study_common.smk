# The study's run lists and shared arguments (study.smk's rules read them): which runs the gains table
# compares, which bases and runs the scale study needs, and the diagnostics' sampling.


def study_extra_targets():
    """What the `study` target builds beside study.md: the gains table, the positions split, the scale study."""
    t = [f"{RES}/study/gains.md", f"{RES}/study/positions.md"]
    if scale_bases():
        t += [f"{RES}/study/scale.md", f"{RES}/study/scale.png"]
    return t


def is_null_lever(name):
    return dict(flatten(config["study"]["levers"][name])).get("shuffle_advantages") is True


def null_lever(name):
    """The lever that is `name`'s null control (the same overrides plus shuffle_advantages: true), or None."""
    levers = config["study"]["levers"]
    want = {**dict(flatten(levers[name])), "shuffle_advantages": True}
    return next((other for other in levers if other != name and dict(flatten(levers[other])) == want), None)


def gain_comparisons():
    """(variant, its null control or None) rows of the gains table: each grid mode beside <mode>-null, each
    lever's run beside its null lever's."""
    rows = [(m, str(runs.null_variant(m))) for m in all_kinds()]
    for name in config["study"]["levers"]:
        if is_null_lever(name):
            continue
        null = null_lever(name)
        rows += [
            (str(runs.lever_variant(m, name)), str(runs.lever_variant(m, null)) if null else None)
            for m in config["study"]["modes"]
        ]
    return rows


def gain_models():
    seeds_of = lambda v: config["study"]["seeds"] if runs.parse_variant(v).lever else SEEDS  # noqa: E731
    variants = [v for pair in gain_comparisons() for v in pair if v]
    return [runs.BASE] + [runs.model_name(v, s) for v in variants for s in seeds_of(v)]


def scale_bases():
    """The scaled bases' names; none for a preset, whose base is not pre-trained here."""
    return list(config["study"]["scale"]["bases"]) if is_toy() else []


def scale_models():
    """Every base of the scale study (the default's first) and its runs at the default budget."""
    out = []
    for scale in [None] + scale_bases():
        out.append(runs.scaled_base(scale))
        for m in config["study"]["modes"]:
            v = runs.Variant(m) if scale is None else runs.scale_variant(m, scale)
            out += [runs.model_name(v, s) for s in config["study"]["scale"]["seeds"]]
    return out


def scale_inputs():
    bases = [m for m in scale_models() if runs.parse_model(m).is_base]
    return [f"{RES}/study/diagnose/{b}.json" for b in bases] + eval_inputs(scale_models(), TEST_SETS[:1])


def diagnose_args(wc=None):
    """The diagnostics' sampling, as the training jobs sample (train.settings over TrainConfig's defaults)."""
    return shlex.join(
        [
            "--prompts",
            str(TRAIN.prompts_per_step),
            "--group",
            str(TRAIN.group_size),
            "--max-cot-tokens",
            str(TRAIN.rollout.max_cot_tokens),
            "--max-answer-tokens",
            str(TRAIN.rollout.max_answer_tokens),
            "--micro-batch",
            str(TRAIN.micro_batch),
            "--template",
            TRAIN.data.prompt_template,
            "--modes",
            *config["study"]["modes"],
        ]
    )
