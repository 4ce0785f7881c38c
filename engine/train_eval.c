/* train_eval.c: what a run learns about its weights as it goes: the eval loss (the base
 * model's before the first step), early stopping with patience, the best weights kept, greedy
 * samples of the sample prompts, and with select "scenarios" the scenarios' answers scored. */
#include "train_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "generate.h"

int train_has_eval(const run *r) { return r->data->eval && r->data->eval->n > 0; }

static void eval_event(run *r, double loss) {
  cJSON *e = train_event("eval");
  cJSON_AddNumberToObject(e, "step", r->step);
  cJSON_AddNumberToObject(e, "eval_loss", loss);
  train_emit(r, e);
}

int train_evaluate_base(run *r, fb_err *err) {
  if (!train_has_eval(r) || r->step > 0) return 0;
  int rc = train_evaluate(r, &r->eval_base, err);
  if (!rc) eval_event(r, r->eval_base);
  return rc;
}

/* The greedy answer of the weights as they are to prompt p: at most max_tokens new tokens
 * (within the model's context; out has room for max_tokens), with the samples' repetition
 * penalty, up to an end-of-sequence token, decoded into text (NUL-terminated). */
static int answer(run *r, const fb_train_prompt *p, int max_tokens, int32_t *out, fb_text *text,
                  fb_err *err) {
  fb_gen_config g = fb_gen_defaults();
  int n = 0, room = r->m->cfg.max_position_embeddings - p->n;
  g.max_new_tokens = max_tokens < room ? max_tokens : room;
  g.repetition_penalty = r->spec->sample_repetition_penalty;
  g.n_stop = r->m->cfg.n_eos < FB_GEN_MAX_STOP ? r->m->cfg.n_eos : FB_GEN_MAX_STOP;
  memcpy(g.stop, r->m->cfg.eos_token_ids, g.n_stop * sizeof g.stop[0]);
  int rc = fb_generate(r->m, r->lora, p->ids, p->n, &g, out, &n, NULL, err);
  if (!rc) rc = fb_tokenizer_decode(r->data->tok, out, (size_t)n, FB_TOK_SKIP_SPECIAL, text, err);
  if (!rc) rc = fb_text_put(text, "", 1, 0); /* NUL */
  return rc;
}

/* select "scenarios": answer every scenario with the weights as they are, have the receiver of
 * the `scenarios` event score the answers, and keep the weights in best when they pass more
 * scenarios than any before; on a tie, when their eval loss (loss; NAN without eval examples)
 * is lower, else the earlier stay. */
static int score_scenarios(run *r, double loss, fb_err *err) {
  const fb_train_data *d = r->data;
  int32_t *out = malloc((size_t)r->spec->select_tokens * sizeof *out);
  int rc = 0;
  cJSON *e = train_event("scenarios"), *answers = NULL;
  if (e) {
    cJSON_AddNumberToObject(e, "step", r->step);
    cJSON_AddNumberToObject(e, "total", d->n_scenarios);
    answers = cJSON_AddArrayToObject(e, "answers");
  }
  if (!out || !answers) rc = fb_err_set(err, FB_ENOMEM, "out of memory for the scenarios' answers");
  for (int i = 0; i < d->n_scenarios && !rc; i++) {
    fb_text text = {0};
    cJSON *a = NULL;
    rc = answer(r, &d->scenarios[i], r->spec->select_tokens, out, &text, err);
    if (!rc && !(a = cJSON_CreateObject()))
      rc = fb_err_set(err, FB_ENOMEM, "out of memory for the scenarios' answers");
    if (!rc) {
      cJSON_AddStringToObject(a, "id", d->scenarios[i].text);
      cJSON_AddStringToObject(a, "text", text.s);
      cJSON_AddItemToArray(answers, a);
    }
    fb_text_free(&text);
  }
  free(out);
  if (rc) {
    cJSON_Delete(e);
    return rc;
  }
  double score = train_emit(r, e);
  volatile sig_atomic_t *cancel = r->opts ? r->opts->cancel : NULL;
  if (isnan(score) && cancel && *cancel)
    return 0; /* a receiver that failed cancelled the run: it stops before the next step */
  if (!(score >= 0 && score <= d->n_scenarios && score == floor(score)))
    return fb_err_set(err, FB_EINVALID,
                      "select \"scenarios\": the answers of step %d were not scored (the receiver "
                      "of the `scenarios` event gives how many passed, 0..%d)",
                      r->step, d->n_scenarios);
  int passed = (int)score;
  if ((rc = train_push_history(r, r->step, passed, err))) return rc;
  if (passed > r->sel_passed || (passed == r->sel_passed && loss < r->sel_eval)) {
    r->sel_passed = passed;
    r->sel_step = r->step;
    r->sel_eval = loss;
    r->be->copy(r->best, r->params, r->n * sizeof *r->best);
  }
  return 0;
}

int train_maybe_evaluate(run *r, int force, fb_err *err) {
  int scenarios = train_selects_scenarios(r);
  if ((!train_has_eval(r) && !scenarios) || (!force && r->step % r->plan.eval_interval != 0))
    return 0;
  double loss = NAN;
  int rc;
  if (train_has_eval(r)) {
    if ((rc = train_evaluate(r, &loss, err))) return rc;
    r->eval_last = loss;
    eval_event(r, loss);
    if (loss < r->eval_best) {
      r->eval_best = loss;
      r->eval_best_step = r->step;
      r->bad_evals = 0;
      if (r->best && !scenarios) r->be->copy(r->best, r->params, r->n * sizeof *r->best);
    } else if (r->spec->patience > 0 && ++r->bad_evals >= r->spec->patience) {
      char msg[160];
      snprintf(msg, sizeof msg,
               "early stopping at step %d: no better eval loss in %d evaluations (best %.4f)",
               r->step, r->bad_evals, r->eval_best);
      train_emit_log(r, "info", msg);
      r->stop = 1;
    }
  }
  return scenarios ? score_scenarios(r, loss, err) : 0;
}

int train_samples(run *r, fb_err *err) {
  const fb_train_data *d = r->data;
  if (!d->tok || d->n_prompts == 0 ||
      (r->step % r->plan.sample_interval != 0 && r->step != r->plan.total))
    return 0;
  int32_t *out = malloc((size_t)r->spec->sample_tokens * sizeof *out);
  if (!out) return fb_err_set(err, FB_ENOMEM, "out of memory for a sample");
  int rc = 0;
  for (int i = 0; i < d->n_prompts && !rc; i++) {
    fb_text text = {0};
    if (d->prompts[i].n >= r->m->cfg.max_position_embeddings)
      continue; /* a prompt as long as the model's context has no room to answer */
    rc = answer(r, &d->prompts[i], r->spec->sample_tokens, out, &text, err);
    if (!rc) {
      cJSON *e = train_event("sample");
      cJSON_AddNumberToObject(e, "step", r->step);
      cJSON_AddStringToObject(e, "prompt", d->prompts[i].text);
      cJSON_AddStringToObject(e, "text", text.s);
      train_emit(r, e);
    }
    fb_text_free(&text);
  }
  free(out);
  return rc;
}
