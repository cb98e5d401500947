//! Reconciliation (대사): payments being confirmed, payments cancelled for a mismatch, the last
//! run, and "run now", which starts a full reconciliation in the background and shows its
//! progress and result on this page.

use super::{Admin, AdminState, CsrfForm, admin_page, payment_rows};
use crate::service::reconciler::{PassReport, Reconciler};
use crate::web::layout::display_time;
use axum::extract::{Form, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The reconciliation started from this page: at most one at a time per instance; the page shows
/// it running, then its result.
#[derive(Clone, Debug, Default)]
pub(crate) struct ManualRun(Arc<Mutex<Option<RunState>>>);

#[derive(Clone, Debug)]
enum RunState {
    Running,
    Done(Box<PassReport>),
}

impl ManualRun {
    fn get(&self) -> Option<RunState> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
    fn set(&self, state: RunState) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(state);
    }
    /// Marks a run started; `false` when one is running already.
    fn start(&self) -> bool {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*s, Some(RunState::Running)) {
            return false;
        }
        *s = Some(RunState::Running);
        true
    }
}

async fn reconciliation_markup(s: &AdminState, a: &Admin) -> Markup {
    let lang = a.lang;
    // A list that cannot be read is shown as unreadable, never as empty.
    let unreadable = |e: crate::service::ServiceError| {
        tracing::error!(error = %e, "reconciliation page could not be read");
        html! { p.error role="alert" { (e.to_string()) } }
    };
    let approving = s
        .services
        .approving(100)
        .await
        .map(|rows| payment_rows(lang, &rows))
        .unwrap_or_else(unreadable);
    let mismatched = s
        .services
        .mismatched(200)
        .await
        .map(|rows| payment_rows(lang, &rows))
        .unwrap_or_else(unreadable);
    let open_charges = super::subscriptions::open_charges_card(s, lang).await;
    let last = s.services.last_reconciler_run().await.ok().flatten();
    let run = s.manual_run.get();
    html! {
        h1 { (lang.t("대사 (Reconciliation)", "Reconciliation")) }
        @match &run {
            Some(RunState::Running) => div.card role="status" {
                // Refreshes itself until the run has finished.
                meta http-equiv="refresh" content="2";
                h2 { (lang.t("대사 실행 중…", "Reconciliation running…")) }
                p.muted { (lang.t("최근 24시간의 결제를 카카오페이와 대조하고 있습니다. 이 페이지가 자동으로 갱신됩니다.", "Comparing the last 24 hours' payments with KakaoPay. This page refreshes itself.")) }
            },
            Some(RunState::Done(report)) => (summary(a, report)),
            None => {},
        }
        div.card {
            h2 { (lang.t("마지막 대사 실행", "Last reconciler run")) }
            @match &last {
                Some(r) => p { (display_time(r.finished_at)) " · " (lang.t("확인 ", "checked ")) (r.checked) " · " (lang.t("변경 ", "changed ")) (r.changed) " · " (lang.t("불일치 ", "mismatches ")) (r.mismatches) " · " (r.instance) },
                None => p.muted { (lang.t("아직 실행 기록이 없습니다.", "No run yet.")) },
            }
            p.muted { (lang.t("자동 대사 주기: ", "Automatic every ")) (s.reconcile_interval.as_secs()) (lang.t("초", " s")) }
            form method="post" action="/admin/reconcile" {
                input type="hidden" name="csrf" value=(a.csrf);
                button.btn.btn-dark type="submit" disabled[matches!(run, Some(RunState::Running))] { (lang.t("지금 대사 실행", "Run now")) }
            }
        }
        div.card { h2 { (lang.t("승인 확인 중인 결제", "Payments being confirmed (approving)")) } (approving) }
        div.card { h2 { (lang.t("금액 불일치로 취소된 결제", "Cancelled for amount mismatch")) } (mismatched) }
        (open_charges)
    }
}

fn summary(a: &Admin, report: &PassReport) -> Markup {
    let lang = a.lang;
    html! {
        div.card role="status" {
            h2 { (lang.t("대사 결과", "Result")) }
            p { (lang.t("확인 ", "Checked ")) (report.checked) " · " (lang.t("변경 ", "changed ")) (report.changed()) " · " (lang.t("불일치 ", "mismatches ")) (report.mismatches()) }
            ul {
                @for l in &report.lines {
                    li {
                        a href={"/admin/payments/" (l.id)} { code { (l.id) } } " "
                        @if let Some(c) = &l.change { (c) " " }
                        @if let Some(m) = &l.mismatch { strong { (lang.t("불일치: ", "MISMATCH: ")) } (m) }
                        @if let Some(e) = &l.error { span.muted { (e) } }
                    }
                }
            }
        }
    }
}

pub(super) async fn reconciliation(State(s): State<AdminState>, a: Admin) -> Response {
    let body = reconciliation_markup(&s, &a).await;
    admin_page(
        a.lang,
        a.lang.t("대사", "Reconciliation"),
        Some(&a.csrf),
        body,
    )
}

/// "Run now": starts a full reconciliation (the due payments, then every payment changed in the
/// last 24 hours) in the background and sends the operator to the page that shows it (303, so a
/// refresh does not start another).
pub(super) async fn reconcile(
    State(s): State<AdminState>,
    a: Admin,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = super::csrf_refused(&s, &a, &form.csrf) {
        return r;
    }
    if s.manual_run.start() {
        let reconciler = Reconciler::new(s.services.clone(), s.reconcile_interval);
        let run = s.manual_run.clone();
        s.services.tasks.spawn(async move {
            let report = reconciler.full_report(Duration::from_secs(24 * 3600)).await;
            run.set(RunState::Done(Box::new(report)));
        });
    }
    Redirect::to("/admin/reconciliation").into_response()
}
