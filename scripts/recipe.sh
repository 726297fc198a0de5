# The main recipe, defined once: sourced by scripts/main_job.sh and scripts/reproduce.sh.
# Images are in [-1, 1]; the paper's noise sigma = 0.1 (images in [0, 1], Song et al.'s VE
# setup) is sigma 0.2 here (docs/guide.md, "The training recipe"). How this recipe was chosen,
# by measurement, is in docs/reproductions.md ("A recipe under which momentum beats naive").
RECIPE_OP=dct-blur
RECIPE_LOSS=clean                 # ssm (eq. 12), clean or dsm (eq. 7)
RECIPE_WEIGHTING=inverse-variance # w(t) = 1 / sigma_t^2 (appendix D)
RECIPE_SIGMA_MAX=0.2              # the paper's 0.1 on [0, 1] images
RECIPE_NOISE_MODE=fixed           # fixed during the blur stage, or growing with it (appendix F.1)
RECIPE_SCHEDULE_KIND=geometric    # geometric (two-stage), wasserstein or mse-matched (eq. 55)
RECIPE_SIGMA_MIN=0.01
RECIPE_NOISE_FRACTION=0.2
RECIPE_MIN_LEVEL=0.5              # geometric blur from 0.5 px (below that the images barely change)
RECIPE_SCHEDULE_FILE=""           # the `softdiff schedule` JSON when the kind is wasserstein
# network and optimiser
RECIPE_NET=(--base-channels 16 --batch 32 --lr 2e-3 --warmup 200 --ema-decay 0.995)

# The noise options of the recipe (also what `softdiff schedule` and `forward-process` take).
recipe_noise_args() {
  local a=(--sigma-min "$RECIPE_SIGMA_MIN" --sigma-max "$RECIPE_SIGMA_MAX" --noise "$RECIPE_NOISE_MODE")
  [ "$RECIPE_NOISE_MODE" = fixed ] && a+=(--noise-fraction "$RECIPE_NOISE_FRACTION")
  printf '%s\n' "${a[@]}"
}
# `softdiff train`'s recipe options from the RECIPE_* variables above, one per line (an ablation
# sets one variable and calls it again). The network options are RECIPE_NET's.
recipe_train_args() {
  local a=(--op "$RECIPE_OP" --loss "$RECIPE_LOSS" --weighting "$RECIPE_WEIGHTING")
  case "$RECIPE_SCHEDULE_KIND" in
    geometric) a+=($(recipe_noise_args) --min-level "$RECIPE_MIN_LEVEL") ;;
    mse-matched) a+=(--schedule-kind mse-matched $(recipe_noise_args)) ;;
    wasserstein) a+=(--schedule "$RECIPE_SCHEDULE_FILE") ;;
    *) echo "recipe.sh: unknown RECIPE_SCHEDULE_KIND '$RECIPE_SCHEDULE_KIND'" >&2; return 2 ;;
  esac
  printf '%s\n' "${a[@]}"
}
# The main job's training budget: 7,500 steps or 15 minutes, whichever comes first (7,500 steps
# took 15 minutes at the 8.4 steps/s of the machine issue 10 was measured on, 20 minutes at the
# 6.25 steps/s of this project's development machine).
RECIPE_STEPS=7500
# The main job's sampling and evaluation (scripts/main_job.sh): the step count of each
# sampler's sample grid, and the step sweep of its evaluation.
MAIN_JOB_MOMENTUM_STEPS=200
MAIN_JOB_NAIVE_STEPS=50
MAIN_JOB_EVAL_STEPS=20,50,100,200
# scripts/reproduce.sh (full run, sized for at most 3 hours of 2 cores): the ablation variants
# are trained for fewer steps than the main model and scored with the momentum sampler only;
# the sigma_max values are the paper's 0.05 and 0.2 (images in [0, 1]) besides the recipe's 0.1.
# Estimate from rates measured on this project's 2-core development machine (Xeon, AVX-512),
# quiet: training 6.25 steps/s (batch 32, base 16, 2 threads; two 1-thread trainings at once
# about the same in total), sampling 1.43 ms per network evaluation of one image (2 threads,
# chunks of 250; the predictor-corrector sampler costs 2 per step): training 2 x 7,500 +
# 16 x 1,200 steps ~91 min, main-model sweep (500 samples) 1.02M image-evaluations ~24 min,
# ablations 0.8M ~19 min, reference statistics (about a minute per evaluation, 18 of them)
# ~18 min: about 2 h 30 min. The first full run took 2 h 25 min on 2 cores shared with builds.
REPRODUCE_ABLATION_STEPS=1200
REPRODUCE_SIGMA_VALUES=(0.1 0.4)
REPRODUCE_MAIN_EVAL_STEPS=20,50,100
REPRODUCE_MAIN_EVAL_COUNT=500
REPRODUCE_ABLATION_EVAL_STEPS=50
REPRODUCE_ABLATION_EVAL_COUNT=1000
