"""Normalisation: every shape an input record arrives in, turned into one :class:`Document`.

:class:`DocumentNormalizer` (:mod:`.document`) reads a record: its keys renamed by
``input.columns`` (:mod:`.columns`), then the first shape of the table
:data:`~qudata.normalize.shapes.SHAPES` that matches reads it into a
:class:`~.conversation.Conversation`; a record no shape matches is a text document.
Turns (:mod:`.turns`) and tool schemas and calls (:mod:`.tools`) are read the same way
for every shape; :mod:`.problems` names what makes the messages unusable.

One module per shape:

=========================  ==================================================
module                     kinds (record keys)
=========================  ==================================================
:mod:`.preference`         ``ranking``, ``preference``, ``hh_rlhf``
                           (``chosen`` and ``rejected``)
:mod:`.messages`           ``messages`` (OpenAI / TRL)
:mod:`.sharegpt`           ``sharegpt`` (``conversations``)
:mod:`.alpaca`             ``alpaca`` (``instruction``, ``output``)
:mod:`.prompt_completion`  ``prompt_completion`` (``prompt``, ``completion``)
:mod:`.question_answer`    ``question_answer`` (``question``, ``answer``)
:mod:`.document`           a text document (``text``), when no shape matches
=========================  ==================================================

Adding an input shape:

1. write a module here with a ``SHAPE = InputShape(kinds=..., matches=..., read=...)``:
   ``kinds`` maps each kind it produces to the record keys that make it up (they are
   not copied into metadata; a kind whose keys include ``tools`` gets the record's
   tool schemas read), ``matches(row)`` recognises a record, ``read(row, turns)``
   returns a :class:`~.conversation.Conversation` or raises
   :class:`~.turns.ConversationError` with a drop reason;
2. add one line to :data:`~qudata.normalize.shapes.SHAPES`, where it must be tried
   (before any shape whose ``matches`` would also accept its records);
3. add the kind to docs/formats.md's table of shapes, and a fixture and a test.
"""

from __future__ import annotations

from qudata.normalize.columns import Shape
from qudata.normalize.conversation import Conversation, InputShape
from qudata.normalize.document import DocumentNormalizer
from qudata.normalize.shapes import KINDS, SHAPES, read_conversation
from qudata.normalize.turns import ConversationError

__all__ = [
    "KINDS",
    "SHAPES",
    "Conversation",
    "ConversationError",
    "DocumentNormalizer",
    "InputShape",
    "Shape",
    "read_conversation",
]
