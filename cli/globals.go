package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/orderflow/orderflow/config"
	"github.com/orderflow/orderflow/mongoclient"
	"github.com/orderflow/orderflow/progress"
)

// globals are the flags every command takes, and what they set up.
type globals struct {
	config, brokers, mongoURI, logLevel, cpuProfile string

	defaultConfig  []byte
	stdout, stderr io.Writer
	stopProfile    func()
}

// load reads the configuration the flags point at, with the environment and
// then the flags on top, and returns it with the name of its file.
func (g *globals) load() (*config.Config, string, error) {
	path := g.config
	if path == "" {
		path = os.Getenv("ORDERFLOW_CONFIG")
	}
	data, name := g.defaultConfig, "orderflow.yaml (shipped)"
	if path == "" {
		if _, err := os.Stat("orderflow.yaml"); err == nil {
			path = "orderflow.yaml"
		}
	}
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, "", fmt.Errorf("read configuration: %w", err)
		}
		name = path
	}
	cfg, err := config.Load(data, name, config.OSEnv)
	if err != nil {
		return nil, "", err
	}
	if err := cfg.CheckEnviron(os.Environ()); err != nil {
		return nil, "", err
	}
	if g.cpuProfile != "" {
		f, err := os.Create(g.cpuProfile)
		if err != nil {
			return nil, "", fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, "", fmt.Errorf("cpu profile: %w", err)
		}
		g.stopProfile = func() { pprof.StopCPUProfile(); f.Close() }
	}
	if g.brokers != "" {
		cfg.Kafka.Brokers = strings.Split(g.brokers, ",")
	}
	if g.mongoURI != "" {
		cfg.MongoDB.URI = g.mongoURI
	}
	if g.logLevel != "" {
		cfg.Log.Level = g.logLevel
	}
	return cfg, name, nil
}

// connect loads the configuration and connects to its MongoDB, for the
// commands that only read or write there.
func (g *globals) connect() (*config.Config, *mongoclient.Conn, error) {
	cfg, _, err := g.load()
	if err != nil {
		return nil, nil, err
	}
	m, err := mongoclient.Connect(cfg.MongoDB)
	if err != nil {
		return nil, nil, err
	}
	return cfg, m, nil
}

// logger is the configured logger, on stderr: text on a terminal (with
// log.format auto), JSON otherwise.
func (g *globals) logger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	text := cfg.Log.Format == "text"
	if cfg.Log.Format == "auto" {
		f, ok := g.stderr.(*os.File)
		text = ok && progress.IsTerminal(f)
	}
	if text {
		return slog.New(slog.NewTextHandler(g.stderr, opts))
	}
	return slog.New(slog.NewJSONHandler(g.stderr, opts))
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && progress.IsTerminal(f)
}
