"""The FAQ knowledge base: entries, the matcher, and its evaluation."""

from knowledge_base.base import Answer, Candidate, Clarify, Decline, KnowledgeBase, NeverMatches

__all__ = ["Answer", "Candidate", "Clarify", "Decline", "KnowledgeBase", "NeverMatches"]
