// activity.test.mjs: the training view's log lines (web/activity.js) for the events a job's
// stream carries, the scheduler's word on a live job among them (docs/slurm.md): no browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { activityLine } from '../../web/activity.js';

test('a live job shows what Slurm says of it; a plain running state stays out', () => {
  assert.deepEqual(activityLine({ event: 'state', state: 'running', reason: 'Slurm: PENDING (Resources)' }),
    { kind: 'state', text: 'Slurm: PENDING (Resources).' });
  assert.deepEqual(activityLine({ event: 'state', state: 'queued', reason: 'Slurm: RUNNING (node1)' }),
    { kind: 'state', text: 'Slurm: RUNNING (node1).' });
  assert.equal(activityLine({ event: 'state', state: 'running' }), null);
  assert.equal(activityLine({ event: 'state', state: 'running', reason: null }), null);
});

test('ended jobs say how, with what Slurm reported', () => {
  assert.equal(activityLine({ event: 'state', state: 'failed', reason: 'Slurm: NODE_FAIL: the node of job 7 failed' }).text,
    'Failed: Slurm: NODE_FAIL: the node of job 7 failed.');
  assert.equal(activityLine({ event: 'state', state: 'cancelled', reason: 'cancelled in Slurm (scancel of job 9)' }).text,
    'Cancelled: cancelled in Slurm (scancel of job 9). Resume continues from the last checkpoint.');
  assert.equal(activityLine({ event: 'state', state: 'succeeded' }).text, 'Finished.');
});

test('steps, evaluations and the worker\'s diagnostics', () => {
  assert.equal(activityLine({ event: 'progress', step: 3, total_steps: 10, loss_smoothed: 1.5, tokens_per_s: 99.6 }).kind, 'step');
  assert.equal(activityLine({ event: 'eval', step: 0, eval_loss: 2 }).text.startsWith('Held-out loss before training'), true);
  assert.equal(activityLine({ event: 'log', level: 'stderr', message: 'x' }), null);
  assert.equal(activityLine({ event: 'log', level: 'warn', message: 'slurm: job 4 requeued' }).text, 'warn: slurm: job 4 requeued');
});
