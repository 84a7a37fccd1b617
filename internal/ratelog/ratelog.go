// Package ratelog logs noisy, repeating warnings at most once per interval
// per key, with the count of what it suppressed in between: a broker that
// is down or a sender spewing bad messages must not flood the log.
package ratelog

import (
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Logger rate-limits by key. The zero value is not usable; use New.
type Logger struct {
	log        *zap.Logger
	every      time.Duration
	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

// New returns a Logger writing at most once per every per key.
func New(log *zap.Logger, every time.Duration) *Logger {
	if log == nil {
		log = zap.NewNop()
	}
	return &Logger{log: log, every: every, last: map[string]time.Time{}, suppressed: map[string]int{}}
}

// Warn logs msg at warn level unless key was logged within the interval.
func (l *Logger) Warn(msg, key string, fields ...zap.Field) {
	l.write(zapcore.WarnLevel, msg, key, fields)
}

// Error logs msg at error level unless key was logged within the interval.
func (l *Logger) Error(msg, key string, fields ...zap.Field) {
	l.write(zapcore.ErrorLevel, msg, key, fields)
}

func (l *Logger) write(level zapcore.Level, msg, key string, fields []zap.Field) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.last[key]) < l.every {
		l.suppressed[key]++
		return
	}
	if ce := l.log.Check(level, msg); ce != nil {
		ce.Write(append(fields, zap.Int("suppressed_since_last", l.suppressed[key]))...)
	}
	l.last[key] = time.Now()
	l.suppressed[key] = 0
}
