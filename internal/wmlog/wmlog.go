// Package wmlog adapts slog to Watermill's logger.
package wmlog

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// wmLogger adapts slog to Watermill. Unlike watermill.NewSlogLogger it
// checks the level before turning the fields into attributes: the router
// logs three trace lines per message, and building them showed in the
// profile.
type wmLogger struct {
	log *slog.Logger
	// info is the level Watermill's info lines get; the router's are
	// chatty, so they go to debug.
	info slog.Level
}

// New returns a Watermill logger writing to log, with Watermill's chatty
// info lines at debug level.
func New(log *slog.Logger) watermill.LoggerAdapter {
	return wmLogger{log: log, info: slog.LevelDebug}
}

func (l wmLogger) emit(level slog.Level, msg string, fields watermill.LogFields, extra ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	args := make([]any, 0, 2*len(fields)+len(extra))
	for k, v := range fields {
		args = append(args, k, v)
	}
	l.log.Log(context.Background(), level, msg, append(args, extra...)...)
}

// Error logs at error level, except the router's reports about single
// messages (they carry a message_uuid): orderflow logs those itself, with
// the order id and correlation id, so the router's copy goes to debug.
func (l wmLogger) Error(msg string, err error, fields watermill.LogFields) {
	level := slog.LevelError
	if _, perMessage := fields["message_uuid"]; perMessage {
		level = slog.LevelDebug
	}
	l.emit(level, msg, fields, "error", err)
}
func (l wmLogger) Info(msg string, fields watermill.LogFields) { l.emit(l.info, msg, fields) }
func (l wmLogger) Debug(msg string, fields watermill.LogFields) {
	l.emit(slog.LevelDebug, msg, fields)
}
func (l wmLogger) Trace(msg string, fields watermill.LogFields) {
	l.emit(watermill.LevelTrace, msg, fields)
}
func (l wmLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	return wmLogger{log: l.log.With(args...), info: l.info}
}
