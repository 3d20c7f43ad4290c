package redisstore

// Abandon stops p's writer and leaves its entries in Redis to expire, as
// the death of its node would.
func Abandon(p *Presence) {
	p.once.Do(func() {
		close(p.quit)
		<-p.done
	})
}
