/**
 * Word lists of the RULER generators (written for starq): needle keys, the common-words-extraction
 * vocabulary and the sentences of the synthetic ("noise") haystack. Plain ASCII, no duplicates.
 */
import type { Rng } from '@starq/model/sampling';
import { shuffled } from './rng';

/** Needle keys: simple first names and simple words (niah-1M: "a simple word or name"). */
export const NEEDLE_KEYS: readonly string[] = [
  'Lily', 'Tom', 'Ben', 'Mia', 'Max', 'Sue', 'Anna', 'Sam', 'Tim', 'Lucy', 'Jack', 'Emma', 'Leo', 'Zoe',
  'Sara', 'Bob', 'Kate', 'Mark', 'Rosa', 'Dan', 'Nina', 'Paul', 'Ruby', 'Joe', 'Amy', 'Finn', 'Ella',
  'Jake', 'Molly', 'Peter', 'Grace', 'Henry', 'Olive', 'Oscar', 'Daisy', 'Noah', 'Ivy', 'Hugo',
  'apple', 'river', 'cloud', 'tiger', 'garden', 'candle', 'pencil', 'rocket', 'window', 'dragon',
  'button', 'castle', 'forest', 'pillow', 'basket', 'turtle', 'rabbit', 'mirror', 'ladder', 'bridge',
  'orange', 'hammer', 'jacket', 'kettle', 'lemon', 'marble', 'needle', 'pepper', 'puppet', 'saddle',
  'silver', 'spider', 'summer', 'tunnel', 'violin', 'wagon', 'zebra', 'anchor', 'banana', 'carrot',
];

/** Vocabulary of the common-words-extraction task: everyday nouns, verbs and adjectives. */
export const CWE_WORDS: readonly string[] = [
  'ability', 'account', 'acorn', 'actor', 'address', 'advice', 'airport', 'alarm', 'album', 'alley',
  'angle', 'animal', 'ankle', 'answer', 'apron', 'arch', 'arena', 'army', 'arrow', 'artist',
  'attic', 'author', 'avenue', 'bacon', 'badge', 'bakery', 'balcony', 'ballet', 'bamboo', 'bandit',
  'barrel', 'beach', 'beacon', 'beard', 'beetle', 'bench', 'berry', 'bicycle', 'blanket', 'blossom',
  'border', 'bottle', 'bracelet', 'branch', 'breeze', 'brick', 'broom', 'bucket', 'buffalo', 'bundle',
  'cabin', 'cactus', 'camera', 'canal', 'canyon', 'captain', 'cargo', 'carpet', 'cattle', 'cellar',
  'chalk', 'channel', 'cherry', 'chimney', 'circle', 'circus', 'climate', 'clock', 'coast', 'cobweb',
  'coffee', 'collar', 'comet', 'compass', 'copper', 'cotton', 'cousin', 'cradle', 'crayon', 'cricket',
  'crystal', 'cupboard', 'curtain', 'cushion', 'dancer', 'desert', 'diamond', 'dinner', 'doctor', 'dolphin',
  'donkey', 'drawer', 'drum', 'eagle', 'earth', 'engine', 'envelope', 'falcon', 'farmer', 'feather',
  'fence', 'festival', 'finger', 'flame', 'flute', 'fountain', 'fox', 'freedom', 'frost', 'galaxy',
  'garage', 'giant', 'ginger', 'glacier', 'glove', 'goat', 'gravel', 'guitar', 'harbor', 'harvest',
  'helmet', 'honey', 'horizon', 'hotel', 'island', 'jelly', 'jewel', 'journey', 'jungle', 'kitten',
  'lantern', 'laundry', 'lawyer', 'leather', 'library', 'lizard', 'lobster', 'locket', 'magnet', 'mango',
  'market', 'meadow', 'melody', 'meteor', 'mitten', 'monkey', 'morning', 'mountain', 'muffin', 'museum',
  'napkin', 'nephew', 'noodle', 'notebook', 'ocean', 'office', 'onion', 'orchard', 'otter', 'oyster',
  'paddle', 'palace', 'panther', 'parade', 'parrot', 'pebble', 'pelican', 'penguin', 'pepper', 'piano',
  'picnic', 'pigeon', 'pirate', 'planet', 'plaza', 'pocket', 'poem', 'pony', 'potato', 'prairie',
  'puzzle', 'pyramid', 'quarry', 'quilt', 'raccoon', 'radar', 'railway', 'rainbow', 'raven', 'recipe',
  'ribbon', 'riddle', 'robot', 'rooftop', 'saddle', 'sailor', 'salad', 'sandal', 'scarf', 'school',
  'scissors', 'seagull', 'shadow', 'shelter', 'shovel', 'signal', 'singer', 'sketch', 'sled', 'slipper',
  'snail', 'soldier', 'sparrow', 'spoon', 'squirrel', 'stadium', 'statue', 'stove', 'stream', 'sugar',
  'sunset', 'swamp', 'sweater', 'table', 'teacher', 'temple', 'tent', 'theater', 'thunder', 'ticket',
  'tomato', 'tower', 'tractor', 'trumpet', 'tulip', 'umbrella', 'valley', 'velvet', 'village', 'volcano',
  'waffle', 'wallet', 'walnut', 'warrior', 'whale', 'whistle', 'willow', 'wizard', 'wolf', 'yogurt',
  'brave', 'bright', 'calm', 'clever', 'cozy', 'curious', 'eager', 'fancy', 'gentle', 'golden',
  'humble', 'jolly', 'lively', 'lucky', 'mighty', 'noble', 'polite', 'proud', 'quiet', 'rapid',
  'shiny', 'silly', 'sleepy', 'smooth', 'sturdy', 'swift', 'tiny', 'wise', 'wooden', 'young',
  'borrow', 'build', 'carry', 'climb', 'collect', 'dance', 'dream', 'explore', 'gather', 'giggle',
  'gallop', 'hurry', 'juggle', 'knit', 'listen', 'paint', 'polish', 'repair', 'scribble', 'wander',
];

const SYLLABLE_ONSETS = ['b', 'd', 'f', 'g', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'z'];
const SYLLABLE_VOWELS = ['a', 'e', 'i', 'o', 'u'];

/**
 * `n` distinct words in random order: the {@link CWE_WORDS} first (shuffled), then, only when more
 * are needed, seeded pseudo-words of three consonant–vowel syllables (never equal to a listed word).
 */
export function distinctWords(rng: Rng, n: number): string[] {
  const out = shuffled(rng, CWE_WORDS).slice(0, n);
  const seen = new Set(out);
  const cap = (SYLLABLE_ONSETS.length * SYLLABLE_VOWELS.length) ** 3;
  if (n - out.length > cap) throw new Error(`distinctWords: at most ${CWE_WORDS.length + cap} words, asked for ${n}`);
  while (out.length < n) {
    let w = '';
    for (let s = 0; s < 3; s++) {
      w += SYLLABLE_ONSETS[Math.floor(rng.next() * SYLLABLE_ONSETS.length)];
      w += SYLLABLE_VOWELS[Math.floor(rng.next() * SYLLABLE_VOWELS.length)];
    }
    if (!seen.has(w)) {
      seen.add(w);
      out.push(w);
    }
  }
  return out;
}

/** Sentences of the synthetic haystack (picked at random, one after another). */
export const FILLER_SENTENCES: readonly string[] = [
  'The hills are quiet in the evening.',
  'A small boat drifts along the river.',
  'The old clock in the hall ticks slowly.',
  'Rain falls softly on the roof.',
  'The baker opens the shop before sunrise.',
  'Leaves turn red and yellow in the fall.',
  'A cat sleeps in a warm patch of sun.',
  'The road winds up toward the village.',
  'Children play games in the park after school.',
  'The wind moves through the tall grass.',
  'Stars appear one by one over the lake.',
  'The train leaves the station on time.',
];
