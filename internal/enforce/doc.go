// Package enforce is the one path from a committed change to enforcement.
// The engine commits a change (bans made or lifted) to the database, the
// source of truth, together with the actions and alerts it causes (the
// outbox); Apply then reconciles every enforcement target to the active
// bans and wakes the outbox. The daemon's loop, the daemon-less CLI and
// replay all go through it, so a new target or output plugs in here once.
//
// A Target follows the database: it is handed the whole active state and
// makes itself hold exactly that, so a missed or failed update is repaired
// by the next one, and a target that drifted (a map deleted behind our
// back) is put right by the periodic check. Each target has its own
// Reconciler, so a slow or failing target never delays another or the
// reading of logs.
package enforce
