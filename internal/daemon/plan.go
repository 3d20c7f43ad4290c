package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/herald-sse/herald/hub"
	"github.com/herald-sse/herald/internal/config"
)

// Plan is what a configuration asks of a node, built without opening
// anything: no file, no store, no listener.
type Plan struct {
	// Hub is the hub's configuration, without its Log, which Open adds.
	Hub hub.Config
	// Dev is the development setup, nil when a publisher key is
	// configured.
	Dev *DevSetup

	cfg    config.Config
	logger *slog.Logger
}

// DevSetup is the configuration the daemon makes up when it is given no
// key: a random key for both publishers and subscribers, and a token.
type DevSetup struct {
	// Key is the HS256 key of publishers and subscribers, made up for
	// this run.
	Key string
	// Token may publish and subscribe to every topic.
	Token string
	// What the hub was given, for the start-up lines: the development
	// setup's defaults or what was set.
	Anonymous, Subscriptions bool
	CORSOrigins              []string
}

// NewPlan turns the daemon's configuration into the hub's. cfg is taken
// as validated (config.Config.Validate); an error is a key the hub cannot
// use. logger becomes the hub's and the store's.
func NewPlan(cfg config.Config, logger *slog.Logger) (*Plan, error) {
	var dev *DevSetup
	pubKey, subKey := cfg.PublisherJWTKey, cfg.SubscriberJWTKey
	pubAlg := cfg.PublisherJWTAlg
	if pubKey == "" {
		var raw [32]byte
		_, _ = rand.Read(raw[:])
		key := hex.EncodeToString(raw[:])
		token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"mercure": map[string]any{"publish": []string{"*"}, "subscribe": []string{"*"}},
		}).SignedString([]byte(key))
		if err != nil {
			return nil, err
		}
		dev = &DevSetup{Key: key, Token: token}
		pubKey, pubAlg = key, "HS256"
	}
	pk, err := hub.NewKey(pubAlg, []byte(pubKey))
	if err != nil {
		return nil, fmt.Errorf("publisher-jwt-key: %w", err)
	}
	sk := pk
	if subKey != "" {
		alg := cfg.SubscriberJWTAlg
		if alg == "" {
			alg = pubAlg
		}
		if sk, err = hub.NewKey(alg, []byte(subKey)); err != nil {
			return nil, fmt.Errorf("subscriber-jwt-key: %w", err)
		}
	}
	// The development setup is Mercure's: anonymous subscribers, the
	// subscriptions API, and pages on any origin; each can be set.
	anonymous, subscriptions, cors := dev != nil, dev != nil, cfg.CORSOrigins
	if cfg.Anonymous != nil {
		anonymous = *cfg.Anonymous
	}
	if cfg.Subscriptions != nil {
		subscriptions = *cfg.Subscriptions
	}
	if cors == nil && dev != nil {
		cors = []string{"*"}
	}
	if dev != nil {
		dev.Anonymous, dev.Subscriptions, dev.CORSOrigins = anonymous, subscriptions, cors
	}
	hc := hub.Config{
		PublisherKey:     pk,
		SubscriberKey:    sk,
		Anonymous:        anonymous,
		CookieName:       cfg.CookieName,
		PublishOrigins:   cfg.PublishOrigins,
		CORSOrigins:      cors,
		Subscriptions:    subscriptions,
		Heartbeat:        orNone(cfg.Heartbeat),
		BatchInterval:    orNone(cfg.BatchInterval),
		MaxBatchInterval: cfg.MaxBatchInterval,
		MaxLifetime:      orNone(cfg.WriteTimeout),
		DispatchTimeout:  cfg.DispatchTimeout,
		MaxBodySize:      cfg.MaxBodySize,
		MaxTopics:        cfg.MaxTopics,
		MaxConnections:   cfg.MaxConnections,
		Logger:           logger,

		MaxSelectors:      cfg.MaxSelectors,
		MaxClaimSelectors: cfg.MaxClaimSelectors,
		MaxTemplates:      cfg.MaxTemplates,
	}
	if cfg.MaxConnections == 0 {
		hc.MaxConnections = -1 // the daemon's 0 is no limit, the hub's is its default
	}
	return &Plan{Hub: hc, Dev: dev, cfg: cfg, logger: logger}, nil
}

// orNone maps the daemon's "0 means none" to the hub's negative value.
func orNone(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
