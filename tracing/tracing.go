// Package tracing is optional OpenTelemetry tracing across the stages. The
// trace context travels in each message's metadata (the W3C traceparent
// header, which becomes a Kafka header), so one line's spans at every stage
// form one trace, whichever Kafka client carries them.
package tracing

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config says where spans go.
type Config struct {
	// Exporter is "stdout" or "otlp".
	Exporter string
	// Endpoint is the OTLP/HTTP collector address (host:port); empty uses
	// the OTEL_EXPORTER_OTLP_* environment.
	Endpoint    string
	ServiceName string
}

// Setup installs a tracer provider exporting as cfg says, and the W3C
// propagator. exporter, when not nil, replaces the configured one (tests).
// The returned function flushes and stops it.
func Setup(ctx context.Context, cfg Config, exporter sdktrace.SpanExporter) (func(context.Context) error, error) {
	if exporter == nil {
		var err error
		switch cfg.Exporter {
		case "otlp":
			var opts []otlptracehttp.Option
			if cfg.Endpoint != "" {
				opts = append(opts, otlptracehttp.WithEndpoint(cfg.Endpoint), otlptracehttp.WithInsecure())
			}
			exporter, err = otlptracehttp.New(ctx, opts...)
		default:
			exporter, err = stdouttrace.New()
		}
		if err != nil {
			return nil, fmt.Errorf("tracing exporter: %w", err)
		}
	}
	res := resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp.Shutdown, nil
}

// carrier reads and writes trace context in message metadata.
type carrier message.Metadata

func (c carrier) Get(key string) string { return c[key] }
func (c carrier) Set(key, value string) { c[key] = value }
func (c carrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes the trace context of ctx into msg's metadata.
func Inject(ctx context.Context, msg *message.Message) {
	otel.GetTextMapPropagator().Inject(ctx, carrier(msg.Metadata))
}

// Middleware starts a span for each message a handler processes, as a child
// of the span that produced it. The span is in the message's context, so
// what the handler produces carries it on (see Inject).
func Middleware(h message.HandlerFunc) message.HandlerFunc {
	tracer := otel.Tracer("github.com/orderflow/orderflow")
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := otel.GetTextMapPropagator().Extract(msg.Context(), carrier(msg.Metadata))
		handler := message.HandlerNameFromCtx(ctx)
		ctx, span := tracer.Start(ctx, handler, trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				attribute.String("messaging.system", "kafka"),
				attribute.String("messaging.source.name", message.SubscribeTopicFromCtx(ctx)),
				attribute.String("messaging.message.id", msg.UUID),
				attribute.String("messaging.consumer.handler", handler),
			))
		defer span.End()
		msg.SetContext(ctx)
		out, err := h(msg)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return out, err
	}
}

// Start begins a span for work outside a handler, such as generating an
// order.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return otel.Tracer("github.com/orderflow/orderflow").Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
}
