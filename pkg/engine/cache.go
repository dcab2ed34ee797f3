package engine

import (
	"container/list"
	"sync"
)

// executorCache keeps the running instances a worker has recently turned, up to a bound; the
// least recently used is evicted (and its orchestrator goroutine ended) first.
type executorCache struct {
	mu    sync.Mutex
	size  int
	order *list.List // of *cacheEntry, most recent first
	byID  map[string]*list.Element
}

type cacheEntry struct {
	id string
	l  *live
}

func newExecutorCache(size int) *executorCache {
	return &executorCache{size: size, order: list.New(), byID: map[string]*list.Element{}}
}

// get removes and returns the cached instance: the caller owns it for the turn and puts it back.
func (c *executorCache) get(id string) *live {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[id]
	if !ok {
		return nil
	}
	c.order.Remove(el)
	delete(c.byID, id)
	return el.Value.(*cacheEntry).l
}

func (c *executorCache) put(id string, l *live) {
	if c.size == 0 {
		l.exec.Close()
		return
	}
	c.mu.Lock()
	var evicted []*live
	if el, ok := c.byID[id]; ok {
		c.order.Remove(el)
		evicted = append(evicted, el.Value.(*cacheEntry).l)
	}
	c.byID[id] = c.order.PushFront(&cacheEntry{id: id, l: l})
	for c.order.Len() > c.size {
		el := c.order.Back()
		c.order.Remove(el)
		e := el.Value.(*cacheEntry)
		delete(c.byID, e.id)
		evicted = append(evicted, e.l)
	}
	c.mu.Unlock()
	for _, e := range evicted {
		e.exec.Close()
	}
}

func (c *executorCache) drop(id string) {
	if l := c.get(id); l != nil && l.exec != nil {
		l.exec.Close()
	}
}

func (c *executorCache) clear() {
	c.mu.Lock()
	var all []*live
	for _, el := range c.byID {
		all = append(all, el.Value.(*cacheEntry).l)
	}
	c.byID = map[string]*list.Element{}
	c.order.Init()
	c.mu.Unlock()
	for _, l := range all {
		if l.exec != nil {
			l.exec.Close()
		}
	}
}
