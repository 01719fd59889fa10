export { checkTopicName, checkTopicFilter, isWildcardFilter, parseSharedFilter, type SharedFilter, type TopicLimits } from './validate.js';
export { TopicTrie } from './trie.js';
export { RetainedIndex } from './retained.js';
export { filterMatches } from './match.js';
