package web

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tripID is the form of a trip's ID: short, and safe in a topic, a URL
// and a URI template without escaping.
var tripID = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// subscriptionsPath is the root of the hub's subscriptions API.
const subscriptionsPath = "/.well-known/mercure/subscriptions"

// Grant is the answer of POST /demo/token: the topics of a trip, and the
// token of one of its two roles.
type Grant struct {
	Role string `json:"role"`
	Trip string `json:"trip"`
	// Topic is the trip's topic, where the driver publishes its updates.
	Topic string `json:"topic"`
	// DriverTopic is the topic the driver subscribes to while present.
	DriverTopic string `json:"driverTopic"`
	// Presence is the subscriptions API's path of the driver's topic, and
	// PresenceEvents the URI template of its subscription events' topics.
	Presence       string `json:"presence"`
	PresenceEvents string `json:"presenceEvents"`
	// Token is the driver's token. A rider's goes only into the cookie
	// (HttpOnly), so Token is empty for one.
	Token   string    `json:"token,omitempty"`
	Expires time.Time `json:"expires"`
}

// grant returns the topics of trip id.
func grant(role, id string) Grant {
	topic := TopicBase + id
	driver := topic + "/driver"
	presence := subscriptionsPath + "/" + url.QueryEscape(driver)
	return Grant{Role: role, Trip: id, Topic: topic, DriverTopic: driver, Presence: presence, PresenceEvents: presence + "/{subscriber}"}
}

// mint serves POST /demo/token: a form with role (driver or rider) and
// trip (the trip's ID). A driver's token may publish to the trip's topic
// and subscribe to it and to its driver topic; it comes in the answer,
// for the driver page to send in the Authorization header and the
// authorization query parameter. A rider's token may subscribe to the
// trip's topic and to its driver's subscriptions (the API's path and the
// subscription events); it comes as the hub's cookie, HttpOnly, for the
// hub's path only, so that a driver's tab in the same browser does not
// depend on it. Either expires after Config.TokenLifetime.
func (h *handler) mint(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		refuse(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send the form as application/x-www-form-urlencoded", "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		refuse(w, http.StatusBadRequest, "invalid_body", "the body is not a valid form", "")
		return
	}
	role, id := r.PostForm.Get("role"), r.PostForm.Get("trip")
	if !tripID.MatchString(id) {
		refuse(w, http.StatusBadRequest, "invalid_trip", "trip: 1 to 32 characters among a-z, 0-9 and -", "")
		return
	}
	g := grant(role, id)
	now := time.Now()
	g.Expires = now.Add(h.cfg.TokenLifetime).Truncate(time.Second)
	var claims map[string]any
	switch role {
	case "driver":
		claims = map[string]any{"publish": []string{g.Topic}, "subscribe": []string{g.Topic, g.DriverTopic}}
	case "rider":
		claims = map[string]any{"subscribe": []string{g.Topic, g.Presence, g.PresenceEvents}}
	default:
		refuse(w, http.StatusBadRequest, "invalid_role", "role: driver or rider", "")
		return
	}
	claims["payload"] = map[string]string{"role": role, "trip": id}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"mercure": claims,
		"iat":     now.Unix(),
		"exp":     g.Expires.Unix(),
	}).SignedString(h.cfg.DevKey)
	if err != nil {
		refuse(w, http.StatusInternalServerError, "internal", "signing the token: "+err.Error(), "")
		return
	}
	if role == "rider" {
		http.SetCookie(w, &http.Cookie{
			Name:     h.cfg.CookieName,
			Value:    token,
			Path:     "/.well-known/mercure",
			MaxAge:   int(h.cfg.TokenLifetime / time.Second), // gone when the token is: never an expired one sent
			HttpOnly: true,
			Secure:   r.TLS != nil,
			SameSite: http.SameSiteStrictMode,
		})
	} else {
		g.Token = token
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(g)
}
