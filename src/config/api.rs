//! The client-facing APIs a model can serve: what `[models.ID] apis` lists, and what the
//! router, the provider clients and the mock upstream dispatch on.

use serde::Deserialize;

/// How a stream's events are written: the client's API decides, and a provider that speaks
/// another one translates at its edge, so the scanner and the relay see the client's dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `chat.completion.chunk` / `text_completion` events, then `data: [DONE]`.
    OpenAi,
    /// The Responses API's typed events (`response.output_text.delta`, …,
    /// `response.completed`).
    Responses,
    /// Anthropic's Messages events (`message_start`, `content_block_delta`, …,
    /// `message_stop`).
    Anthropic,
}

/// One client-facing API: OpenAI's, and Anthropic's Messages API (with its token count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// `POST /v1/chat/completions`
    Chat,
    /// `POST /v1/completions` (legacy text completions)
    Completions,
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/responses` (the Responses API: typed events when streamed)
    Responses,
    /// `POST /v1/messages`: Anthropic's Messages API. A model serving `chat` serves it.
    Messages,
    /// `POST /v1/messages/count_tokens`: Anthropic's token count, served by Anthropic
    /// providers only.
    CountTokens,
}

impl Api {
    pub const ALL: [Api; 6] = [
        Self::Chat,
        Self::Completions,
        Self::Embeddings,
        Self::Responses,
        Self::Messages,
        Self::CountTokens,
    ];

    /// The path after `/v1/` (and after an OpenAI-compatible `base_url`).
    pub fn path(self) -> &'static str {
        match self {
            Self::Chat => "chat/completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Responses => "responses",
            Self::Messages => "messages",
            Self::CountTokens => "messages/count_tokens",
        }
    }

    /// The API whose `[models.ID] apis` entry lets a model serve this one: the Messages API
    /// (and its token count) is a conversation like a chat completion.
    pub fn capability(self) -> Api {
        match self {
            Self::Messages | Self::CountTokens => Self::Chat,
            other => other,
        }
    }

    /// The OpenTelemetry GenAI operation name (`gen_ai.operation.name`).
    pub fn operation(self) -> &'static str {
        match self {
            Self::Chat | Self::Responses | Self::Messages => "chat",
            Self::Completions => "text_completion",
            Self::Embeddings => "embeddings",
            Self::CountTokens => "count_tokens",
        }
    }

    /// The `api` label of the request-level metrics: the name `[models.ID] apis` uses. A fixed
    /// set, so the label's cardinality is bounded by construction.
    pub fn label(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Responses => "responses",
            Self::Messages => "messages",
            Self::CountTokens => "count_tokens",
        }
    }

    /// Position in [`Self::ALL`], for tables indexed by API.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Every `api` label value, in [`Self::ALL`]'s order (docs and tests).
    pub fn labels() -> [&'static str; Self::ALL.len()] {
        Self::ALL.map(Self::label)
    }

    /// How this API's streams are written.
    pub fn dialect(self) -> Dialect {
        match self {
            Self::Chat | Self::Completions | Self::Embeddings => Dialect::OpenAi,
            Self::Responses => Dialect::Responses,
            Self::Messages | Self::CountTokens => Dialect::Anthropic,
        }
    }

    /// Whether answers of this API can stream.
    pub fn streams(self) -> bool {
        !matches!(self, Self::Embeddings | Self::CountTokens)
    }

    /// Whether this API's streams always carry usage (the Responses API's
    /// `response.completed`, Anthropic's `message_start` and `message_delta` do). Then the
    /// router neither asks for usage with `stream_options.include_usage` (neither API has
    /// such an option) nor cuts the usage out: the client gets the stream exactly as the
    /// upstream wrote it.
    pub fn reports_stream_usage(self) -> bool {
        self.dialect() != Dialect::OpenAi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_config_names() {
        for api in Api::ALL {
            let parsed: Api = serde_json::from_value(serde_json::json!(api.label())).unwrap();
            assert_eq!(parsed, api);
            assert_eq!(Api::ALL[api.index()], api);
        }
    }
}
