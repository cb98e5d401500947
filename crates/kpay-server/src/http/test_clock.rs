//! The test clock (contract §5), only while KakaoPay is a sandbox: moves the server's clock and
//! the sandbox's by the same seconds, then runs everything that became due (expiries, lookups,
//! retries) before answering, so that a test can say "20 minutes later" and read the outcome.
//! With a real KakaoPay it does not exist (404).

use super::AppState;
use super::error::{ApiError, ErrorBody, parse_json};
use crate::service::ClockError;
use crate::service::reconciler::Reconciler;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Body of `POST /api/v1/test/clock/advance`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdvanceBody {
    /// How far, in seconds (0 to ten years; 0 only brings this server level with the sandbox).
    pub(crate) seconds: u64,
}

/// The clock's time.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ClockView {
    /// Now, by the server's clock (RFC 3339, KST).
    pub(crate) now: String,
    /// Payments whose lookup is still due after the move (advance only; 0: everything due has
    /// run; more: KakaoPay did not answer for them, or more was due than the passes take).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) still_due: Option<u64>,
}

/// What the sandbox answers to a clock move.
#[derive(Debug, Deserialize)]
struct SandboxNow {
    now: kakaopay::KstDateTime,
}

/// Passes of the reconciler after a move at most: each settles what the one before made due.
const MAX_PASSES: usize = 20;

fn no_test_clock() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "the test clock exists only while KakaoPay is a sandbox",
    )
}

/// The server's time.
#[utoipa::path(get, path = "/api/v1/test/clock", tag = "test clock",
    responses((status = 200, body = ClockView), (status = 401, body = ErrorBody),
        (status = 404, description = "KakaoPay is not a sandbox", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn now(State(state): State<AppState>) -> Result<Json<ClockView>, ApiError> {
    if !state.services.clock.is_test() {
        return Err(no_test_clock());
    }
    Ok(Json(ClockView {
        now: state.services.now().rfc3339(),
        still_due: None,
    }))
}

/// Moves the server's and the sandbox's clocks forward and answers once everything due by the
/// new time has run.
#[utoipa::path(post, path = "/api/v1/test/clock/advance", tag = "test clock", request_body = AdvanceBody,
    responses((status = 200, body = ClockView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "KakaoPay is not a sandbox", body = ErrorBody),
        (status = 502, description = "The sandbox's clock could not be moved; the server's did not move either", body = ErrorBody)),
    security(("bearer" = [])))]
pub(crate) async fn advance(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<ClockView>, ApiError> {
    if !state.services.clock.is_test() {
        return Err(no_test_clock());
    }
    let AdvanceBody { seconds } = parse_json(&body)?;
    if seconds > 10 * 366 * 86_400 {
        return Err(ApiError::invalid(
            "seconds",
            "seconds: must be 0 to 316224000 (ten years)",
        ));
    }
    let clock_error = |e: ClockError| match e {
        ClockError::NotATestClock => no_test_clock(),
        ClockError::TooFar => ApiError::invalid("seconds", format!("seconds: {e}")),
    };
    {
        // No KakaoPay call is out while time jumps: those in flight finish first, new ones wait.
        let _paused = state.services.kakaopay.pause_calls().await;
        // The sandbox's clock is the reference: moved first, and the server's follows it (also
        // catching up with a move whose answer was lost, or made before this process started).
        let url = format!(
            "{}/test/v1/clock/advance",
            state.services.kakaopay.base_url()
        );
        let answer = state
            .http
            .post(&url)
            .json(&serde_json::json!({ "seconds": seconds }))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let sandbox_now = match answer {
            Ok(r) if r.status().is_success() => r.json::<SandboxNow>().await.ok(),
            Ok(r) => {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "kakaopay_unavailable",
                    format!(
                        "the sandbox refused to move its clock ({}); this server's clock did not move",
                        r.status()
                    ),
                ));
            }
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "kakaopay_unavailable",
                    format!(
                        "the sandbox's clock may not have moved ({e}); this server's did not: advance by 0 to bring it level"
                    ),
                ));
            }
        };
        state
            .services
            .clock
            .advance(Duration::from_secs(seconds))
            .map_err(clock_error)?;
        if let Some(s) = sandbox_now {
            state
                .services
                .clock
                .catch_up(s.now.to_utc().into())
                .map_err(clock_error)?;
        }
    }
    let reconciler = Reconciler::new(state.services.clone(), Duration::from_secs(1));
    for _ in 0..MAX_PASSES {
        if reconciler.run_pass().await.checked == 0 {
            break;
        }
    }
    let now = state.services.now();
    let still_due = state.services.due_count(now).await?;
    Ok(Json(ClockView {
        now: now.rfc3339(),
        still_due: Some(still_due),
    }))
}
