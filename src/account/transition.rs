//! [`Transition`]: what one pure step produced.

use core::fmt;

use crate::audit::AuditKind;
use crate::mail::Notice;

use super::TwoFactorRecord;

/// The result of one pure transition: the record to save, the outcome for the caller, the audit
/// events to record and the notices to send (in that order, and only once the record is saved).
///
/// When [`Transition::is_changed`] is `false` the record equals the input and need not be saved.
#[must_use]
pub struct Transition<T> {
    pub(crate) record: TwoFactorRecord,
    pub(crate) changed: bool,
    pub(crate) outcome: T,
    pub(crate) events: Vec<AuditKind>,
    pub(crate) notices: Vec<Notice>,
}

impl<T> Transition<T> {
    pub(crate) fn new(record: TwoFactorRecord, changed: bool, outcome: T) -> Self {
        Transition {
            record,
            changed,
            outcome,
            events: Vec::new(),
            notices: Vec::new(),
        }
    }

    pub(crate) fn event(mut self, kind: AuditKind) -> Self {
        self.events.push(kind);
        self
    }

    pub(crate) fn events_from(mut self, kinds: impl IntoIterator<Item = AuditKind>) -> Self {
        self.events.extend(kinds);
        self
    }

    pub(crate) fn notice(mut self, notice: Notice) -> Self {
        self.notices.push(notice);
        self
    }

    pub(crate) fn notices_from(mut self, notices: impl IntoIterator<Item = Notice>) -> Self {
        self.notices.extend(notices);
        self
    }

    /// The record after the transition.
    pub fn record(&self) -> &TwoFactorRecord {
        &self.record
    }
    /// Whether the record differs from the input and must be saved.
    pub fn is_changed(&self) -> bool {
        self.changed
    }
    /// The outcome for the caller.
    pub fn outcome(&self) -> &T {
        &self.outcome
    }
    /// Audit events, in order.
    pub fn events(&self) -> &[AuditKind] {
        &self.events
    }
    /// Notices to send, in order.
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }
    /// The same transition with its outcome mapped.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Transition<U> {
        Transition {
            record: self.record,
            changed: self.changed,
            outcome: f(self.outcome),
            events: self.events,
            notices: self.notices,
        }
    }
    /// Takes the transition apart: `(record, changed, outcome, events, notices)`.
    pub fn into_parts(self) -> (TwoFactorRecord, bool, T, Vec<AuditKind>, Vec<Notice>) {
        (
            self.record,
            self.changed,
            self.outcome,
            self.events,
            self.notices,
        )
    }
}

impl<T> fmt::Debug for Transition<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transition")
            .field("changed", &self.changed)
            .field("events", &self.events)
            .field("notices", &self.notices)
            .finish_non_exhaustive()
    }
}
