//! The sandbox's error: a KakaoPay error code with its HTTP status and message, rendered in the
//! body shape of the generation that was called.

use serde_json::{Value, json};

/// A KakaoPay-style error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code}, HTTP {status})")]
pub struct SandboxError {
    /// HTTP status.
    pub status: u16,
    /// KakaoPay code.
    pub code: i64,
    /// Message.
    pub message: String,
    /// `extras.method_result_code`.
    pub method_result_code: Option<String>,
    /// `extras.method_result_message`.
    pub method_result_message: Option<String>,
}

impl SandboxError {
    /// An error with `code` and `message` at HTTP `status`.
    pub fn api(status: u16, code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            method_result_code: None,
            method_result_message: None,
        }
    }
    /// A payment error (HTTP 400) with KakaoPay's code.
    pub fn payment(code: i64, message: impl Into<String>) -> Self {
        Self::api(400, code, message)
    }
    /// A parameter error: `-2`, HTTP 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::api(400, -2, message)
    }
    /// Unknown TID: `-721`. Test helpers answer it with 404.
    pub fn unknown_tid() -> Self {
        Self::payment(-721, "TID does not exist")
    }
    /// The same error with another code.
    pub fn with_code(mut self, code: i64) -> Self {
        self.code = code;
        self
    }
    /// Adds `extras`.
    pub fn with_method_result(
        mut self,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        self.method_result_code = Some(code.into());
        self.method_result_message = Some(message.into());
        self
    }

    fn extras(&self) -> Value {
        match (&self.method_result_code, &self.method_result_message) {
            (None, None) => json!({}),
            (code, message) => {
                json!({"method_result_code": code, "method_result_message": message})
            }
        }
    }

    /// The current generation's body: `{error_code, error_message, extras}`.
    pub fn open_body(&self) -> Value {
        json!({"error_code": self.code, "error_message": self.message, "extras": self.extras()})
    }

    /// The legacy generation's body: `{code, msg, extras}`; `extras` left out when empty, as the
    /// Kakao platform does for non-payment errors.
    pub fn legacy_body(&self) -> Value {
        let mut body = json!({"code": self.code, "msg": self.message});
        if self.method_result_code.is_some() {
            body["extras"] = self.extras();
        }
        body
    }
}
