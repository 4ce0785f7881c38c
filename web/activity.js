// activity.js: one event of a training job (live from the stream, or replayed from
// GET /api/training/activity/:skill) as a line of the training view's log tail: its steps,
// evaluations, checkpoints, saving, cancel and resume, messages and errors. The worker's
// stderr (diagnostics: memory, matrix paths) stays in the job's full log, as in
// lua/fastbrain/api/training.lua's activity.
import { num, basename } from './dom.js';

// An event -> {kind, text}, or null when the tail leaves it out. kind 'step' lines replace
// each other: the tail shows the latest step, not every one.
export function activityLine(ev) {
  switch (ev.event) {
    case 'start':
      return { kind: 'start', text: ev.resumed_from_step > 0
        ? `Resumed from step ${ev.resumed_from_step} of ${ev.total_steps}.`
        : `Started: ${ev.examples} examples (${ev.eval_examples} held out), ${ev.total_steps} steps.` };
    case 'progress':
      return { kind: 'step', text: `Step ${ev.step} of ${ev.total_steps}: training loss ${num(ev.loss_smoothed ?? ev.loss)}, ` +
        `${Math.round(ev.tokens_per_s || 0)} tokens/s.` };
    case 'eval':
      return { kind: 'eval', text: ev.step === 0
        ? `Held-out loss before training (the base model's): ${num(ev.eval_loss)}.`
        : `Step ${ev.step}: held-out loss ${num(ev.eval_loss)}.` };
    case 'checkpoint':
      return { kind: 'checkpoint', text: `Step ${ev.step}: checkpoint saved.` };
    case 'saving':
      return { kind: 'saving', text: 'All steps done: saving the adapter…' };
    case 'done':
      return { kind: 'done', text: `Adapter ${basename(ev.adapter)} saved.` };
    case 'error':
      return { kind: 'error', text: `Error: ${ev.message}` };
    case 'log':
      // The worker's stderr is diagnostics (memory, matrix paths); a failure shows its tail.
      if (ev.level === 'debug' || ev.level === 'stderr') return null;
      return { kind: 'log', text: ev.level === 'warn' || ev.level === 'error' ? `${ev.level}: ${ev.message}` : ev.message };
    case 'state':
      return stateLine(ev);
    default:
      return null;
  }
}

function stateLine(ev) {
  const why = ev.reason && ev.reason !== ev.state ? `: ${ev.reason}` : '';
  switch (ev.state) {
    case 'cancelled': return { kind: 'state', text: `Cancelled${why}. Resume continues from the last checkpoint.` };
    case 'interrupted': return { kind: 'state', text: `Interrupted${why}. Resume continues from the last checkpoint.` };
    case 'failed': return { kind: 'state', text: `Failed${why}.` };
    case 'succeeded': return { kind: 'state', text: 'Finished.' };
    // queued and running: the start line says more, but for what a scheduler says of it
    // ("Slurm: PENDING (Resources)", docs/slurm.md)
    default: return ev.reason ? { kind: 'state', text: `${ev.reason}.` } : null;
  }
}
