//! A modern request, run: in its own task (so that it is recorded however its client goes), answered as JSON when
//! its answer comes before any notification, else as an event stream of its notifications and answer (not
//! resumable in this revision; closing it cancels the request). A tool call whose upstream asks the client
//! something is held (`parked`) and answered `input_required`; the client's retry continues it here.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use rmcp::model::{
    ClientRequest, CustomResult, ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage,
    ServerResult,
};
use serde_json::{Map, Value, json};

use super::{answer_json, finish};
use crate::identity::Caller;
use crate::server::parked::{self, HeldCall, Next, Questions};
use crate::server::post::{Running, spawn_request};
use crate::server::stream::{sse_frame, sse_response};
use crate::server::{AppState, Session};

/// Cancels a request's work when dropped armed: closing a modern request's connection or event stream cancels it.
pub(in crate::server) struct CancelOnDrop {
    session: Arc<Session>,
    id: RequestId,
    armed: bool,
}

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.session.cancel_call(&self.id);
        }
    }
}

/// A running modern request and what its answer needs.
struct Driven {
    running: Running,
    /// A tool call's questions to its client (the only requests held for input).
    questions: Option<Arc<Questions>>,
    cancel: CancelOnDrop,
    caller: Caller,
    /// The id the answer goes back under (a retry's, when the call continues).
    id: RequestId,
    /// The tool a call is of (the only requests held for input).
    tool: Option<String>,
}

/// Runs a modern request.
pub(super) async fn run(
    state: AppState,
    headers: &HeaderMap,
    session: Arc<Session>,
    caller: Caller,
    id: RequestId,
    request: ClientRequest,
    stream: bool,
) -> Response {
    // Only a tool call's upstream may ask its client something.
    let (tool, questions) = match &request {
        ClientRequest::CallToolRequest(call) => {
            let questions = Questions::new(&session, state.gateway.config.timeouts.call);
            session.set_questions(Arc::clone(&questions));
            (Some(call.params.name.to_string()), Some(questions))
        }
        _ => (None, None),
    };
    let cancel = CancelOnDrop {
        session: Arc::clone(&session),
        id: id.clone(),
        armed: true,
    };
    let running = spawn_request(&state, session, caller.clone(), id.clone(), request, stream);
    let driven = Driven {
        running,
        questions,
        cancel,
        caller,
        id,
        tool,
    };
    drive(state, headers, driven).await
}

/// Continues a held call with the client's answers: answered under the retry's id, with the call's result or with
/// the questions still open.
pub(super) async fn resume(
    state: AppState,
    headers: &HeaderMap,
    caller: Caller,
    id: RequestId,
    held: &str,
    responses: Option<Value>,
) -> Response {
    let Some(call) = state.held.take(held, &caller.subject_key()) else {
        let error = ServerJsonRpcMessage::error(parked::call_gone(), Some(id));
        return answer_json(&state, headers, &error);
    };
    let HeldCall {
        questions,
        running,
        cancel,
        tool,
        ..
    } = call;
    if let Some(Value::Object(responses)) = responses {
        questions.answer(&responses);
    }
    let driven = Driven {
        running,
        questions: Some(questions),
        cancel,
        caller,
        id,
        tool: Some(tool),
    };
    if driven
        .questions
        .as_ref()
        .is_some_and(|q| !q.input_requests().is_empty())
    {
        // Not every question was answered: asked again, as the upstream would.
        let answer = hold(&state, driven);
        return answer_json(&state, headers, &answer);
    }
    drive(state, headers, driven).await
}

/// Drives a running request to its HTTP answer.
async fn drive(state: AppState, headers: &HeaderMap, mut driven: Driven) -> Response {
    let first = match parked::next(&mut driven.running, driven.questions.as_deref()).await {
        Next::Answer(answer) => {
            driven.cancel.disarm();
            return match answer {
                Some(answer) => answer_json(&state, headers, &with_id(*answer, &driven.id)),
                None => ended_without_answer(),
            };
        }
        Next::Asked => {
            let answer = hold(&state, driven);
            return answer_json(&state, headers, &answer);
        }
        Next::Note(first) => first,
    };
    let start = Some((Some(first), driven, state));
    let events = futures::stream::unfold(start, |step| async move {
        let (first, mut driven, state) = step?;
        if let Some(first) = first {
            return Some((sse_frame(&first), Some((None, driven, state))));
        }
        match parked::next(&mut driven.running, driven.questions.as_deref()).await {
            Next::Note(message) => Some((sse_frame(&message), Some((None, driven, state)))),
            Next::Answer(answer) => {
                driven.cancel.disarm();
                // Notifications sent before the answer, then the answer.
                let mut frames = Vec::new();
                while let Ok(message) = driven.running.0.try_recv() {
                    frames.extend_from_slice(&sse_frame(&message));
                }
                if let Some(answer) = answer {
                    frames.extend_from_slice(&sse_frame(&with_id(*answer, &driven.id)));
                }
                Some((Bytes::from(frames), None))
            }
            Next::Asked => Some((sse_frame(&hold(&state, driven)), None)),
        }
    })
    .map(Ok::<_, Infallible>);
    sse_response(Body::from_stream(events))
}

/// Holds a call whose upstream asked the client something: the answer is `input_required` with the questions and
/// a state naming the held call, sealed for this caller and tool.
fn hold(state: &AppState, driven: Driven) -> ServerJsonRpcMessage {
    let (caller, id) = (driven.caller.clone(), driven.id.clone());
    // Only a tool call has questions (and so is ever held).
    let (Some(tool), Some(questions)) = (driven.tool, driven.questions) else {
        let error =
            ErrorData::internal_error("only a tool call waits for its client's input", None);
        return ServerJsonRpcMessage::error(error, Some(id));
    };
    let requests: Map<String, Value> = questions.input_requests();
    // Still armed: a held call that is forgotten (nobody came back in time, or too many are held) is cancelled.
    let call = HeldCall {
        subject: caller.subject_key(),
        questions,
        running: driven.running,
        cancel: driven.cancel,
        tool: tool.clone(),
    };
    let Some(held) = state.held.hold(call, state.gateway.config.timeouts.call) else {
        return ServerJsonRpcMessage::error(
            ErrorData::new(
                ErrorCode::INTERNAL_ERROR,
                "this caller has too many calls waiting for its input; answer or drop one first",
                Some(json!({"reason": "held_call_limit"})),
            ),
            Some(id),
        );
    };
    let sealed = state.gateway.seal_held(&caller, "tools/call", &tool, &held);
    let result =
        json!({"resultType": "input_required", "inputRequests": requests, "requestState": sealed});
    finish(
        ServerJsonRpcMessage::response(ServerResult::CustomResult(CustomResult::new(result)), id),
        "tools/call",
    )
}

/// An answer under the id of the request it goes back to.
fn with_id(message: ServerJsonRpcMessage, id: &RequestId) -> ServerJsonRpcMessage {
    match message {
        ServerJsonRpcMessage::Response(mut response) => {
            response.id = id.clone();
            ServerJsonRpcMessage::Response(response)
        }
        ServerJsonRpcMessage::Error(mut error) => {
            error.id = Some(id.clone());
            ServerJsonRpcMessage::Error(error)
        }
        other => other,
    }
}

fn ended_without_answer() -> Response {
    crate::server::handlers::http_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::INTERNAL_ERROR,
        "request ended without an answer",
    )
}
